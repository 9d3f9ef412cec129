"""The rendered manifests survive day two: upgrades, autoscaling, node drains and outages.

Each property is derived from what the code and settings allow (the migration lock's wait,
ffmpeg's address-space limit, the conversion timeout, the drain time, argon2's cost), so that a
change to either side that breaks the other fails here rather than in a cluster.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.deploy.rendered import Doc, named, workloads
from video2mp3 import migrations
from video2mp3.adapters.mail import smtp
from video2mp3.converter.ffmpeg import MEMORY_LIMIT

OVERLAYS = ("dev", "prod")
SERVICES = ("auth", "gateway", "gateway-worker", "converter", "notifier")
MiB = 1024 * 1024
# Measured with `make bench-peaks` (docs/DEPLOY.md): what a service needs besides the per-request
# or per-job allowance that the settings bound, rounded up.
PYTHON_PROCESS = 256 * MiB  # the converter's Python beside ffmpeg; a web worker beside its hashes
TRANSFER_SECONDS = 300  # copying the largest video in and its MP3 out, on top of the conversion
Validator = Callable[..., subprocess.CompletedProcess[str]]
Manifests = Callable[[str], list[Doc]]


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (``512Mi``, ``1Gi``, ``250m``, ``2``) as a number of units."""
    units = {"Ki": 1024, "Mi": MiB, "Gi": 1024 * MiB, "m": 0.001, "": 1}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


def settings(docs: list[Doc]) -> dict[str, str]:
    data: dict[str, str] = named(docs, "ConfigMap", "video2mp3-settings")["data"]
    return data


def containers(docs: list[Doc]) -> dict[str, tuple[Doc, Doc]]:
    return {name: (pod, container) for name, pod, container in workloads(docs)}


def autoscaled(docs: list[Doc]) -> set[str]:
    """The Deployments an HPA or a KEDA ScaledObject scales."""
    targets = set()
    for doc in docs:
        if doc["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            targets.add(doc["spec"]["scaleTargetRef"]["name"])
    return targets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(
    overlay: str, manifests: Manifests
) -> None:
    docs = manifests(overlay)
    scaled = autoscaled(docs)
    assert scaled >= {"gateway", "converter"}
    for name in scaled:
        assert "replicas" not in named(docs, "Deployment", name)["spec"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_are_outlasted_by_a_startup_probe(overlay: str, manifests: Manifests) -> None:
    pods = containers(manifests(overlay))
    for service in ("auth", "gateway", "gateway-worker"):  # they migrate before they listen
        probe = pods[service][1]["startupProbe"]
        assert probe["httpGet"] == {"path": "/healthz", "port": "admin"}
        window = probe["periodSeconds"] * probe["failureThreshold"]
        assert window >= migrations.LOCK_WAIT + 30, service
        # Liveness only starts after the startup probe succeeded; its own window is short.
        live = pods[service][1]["livenessProbe"]
        assert live["periodSeconds"] * live["failureThreshold"] < window


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grace_periods_outlast_what_the_settings_allow(
    overlay: str, manifests: Manifests, staged: Path
) -> None:
    docs = manifests(overlay)
    pods, env = containers(docs), settings(docs)
    drain = int(env["VIDEO2MP3_DRAIN_SECONDS"])
    for service in ("auth", "gateway"):
        pod, container = pods[service]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop > 0, service
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 5, service
    assert pods["notifier"][0]["terminationGracePeriodSeconds"] >= 4 * smtp.TIMEOUT + 15
    longest_job = int(env["VIDEO2MP3_CONVERSION_TIMEOUT_SECONDS"]) + TRANSFER_SECONDS
    grace = pods["converter"][0]["terminationGracePeriodSeconds"]
    assert grace >= longest_job
    # RabbitMQ must not take the message back from a converter that is still finishing it.
    conf = named(docs, "ConfigMap", "rabbitmq-config")["data"]["rabbitmq.conf"]
    (timeout_ms,) = re.findall(r"^consumer_timeout\s*=\s*(\d+)$", conf, re.MULTILINE)
    assert int(timeout_ms) > 1000 * grace


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_probe_has_an_explicit_timeout(overlay: str, manifests: Manifests) -> None:
    for name, _, container in workloads(manifests(overlay)):
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in container:
                assert container[kind]["timeoutSeconds"] >= 2, (name, kind)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_memory_limits_hold_what_the_settings_allow(overlay: str, manifests: Manifests) -> None:
    docs = manifests(overlay)
    pods, env = containers(docs), settings(docs)
    converter = pods["converter"][1]["resources"]
    assert quantity(converter["limits"]["memory"]) >= MEMORY_LIMIT + PYTHON_PROCESS
    # Every request thread of every worker may be hashing a password at once.
    auth = pods["auth"][1]
    overrides = {e["name"]: e["value"] for e in auth.get("env", []) if "value" in e}
    auth_env = {**env, **overrides}
    workers = int(auth_env["VIDEO2MP3_WEB_WORKERS"])
    hashes = workers * int(auth_env["VIDEO2MP3_WEB_THREADS"])
    need = hashes * int(auth_env["VIDEO2MP3_ARGON2_MEMORY_KIB"]) * 1024 + workers * PYTHON_PROCESS
    assert quantity(auth["resources"]["limits"]["memory"]) >= need


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scratch_space_is_requested_and_pods_spread(overlay: str, manifests: Manifests) -> None:
    docs = manifests(overlay)
    for name, pod, container in workloads(docs):
        scratch = sum(
            quantity(v["emptyDir"].get("sizeLimit", 0)) for v in pod["volumes"] if "emptyDir" in v
        )
        assert quantity(container["resources"]["requests"]["ephemeral-storage"]) >= scratch, name
    pods = containers(docs)
    for service in SERVICES:
        (spread,) = pods[service][0]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname", service
        assert spread["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": service}}
        # Fixed-size services must land on different nodes; autoscaled ones must not wait.
        strict = "DoNotSchedule" if service not in autoscaled(docs) else "ScheduleAnyway"
        assert spread["whenUnsatisfiable"] == strict, service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_can_scrape_the_admin_ports_and_nothing_else(
    overlay: str, manifests: Manifests, admin_ports: dict[str, int]
) -> None:
    docs = manifests(overlay)
    for service in SERVICES:
        deployment = named(docs, "Deployment", service)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(admin_ports[service])
    (policy,) = [
        d["spec"]
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and any(
            peer.get("namespaceSelector", {}).get("matchLabels")
            == {"kubernetes.io/metadata.name": "monitoring"}
            for rule in d["spec"].get("ingress", [])
            for peer in rule["from"]
        )
    ]
    assert policy["podSelector"]["matchExpressions"][0]["values"] == list(SERVICES)
    assert [rule["ports"] for rule in policy["ingress"]] == [[{"port": "admin"}]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_dns_egress_reaches_nodelocal_dns_cache(overlay: str, manifests: Manifests) -> None:
    docs = manifests(overlay)
    for name in ("converter-egress", "notifier-egress"):
        egress = named(docs, "NetworkPolicy", name)["spec"]["egress"]
        # (a rule without ports, such as the notifier's to webhooks, opens every port)
        (dns,) = [r for r in egress if {"port": 53, "protocol": "UDP"} in r.get("ports", [])]
        assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns["to"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(overlay: str, manifests: Manifests) -> None:
    for _, _, container in workloads(manifests(overlay)):
        image = container["image"]
        if image.startswith(("video2mp3-", "registry.example.com/video2mp3/")):
            assert re.search(r":(dev|\d+\.\d+\.\d+)$", image), image  # our builds: a release tag
        else:  # third-party: a patch release or a digest, never a moving tag
            assert re.search(r":v?\d+\.\d+\.\d+(-[a-z]+)?(@sha256:[0-9a-f]{64})?$", image), image


def test_rabbitmq_liveness_is_light_and_its_service_is_headless(manifests: Manifests) -> None:
    docs = manifests("prod")
    rabbitmq = containers(docs)["rabbitmq"][1]
    assert "status" not in rabbitmq["livenessProbe"]["exec"]["command"]
    for stateful in (d for d in docs if d["kind"] == "StatefulSet"):
        governing = named(docs, "Service", stateful["spec"]["serviceName"])
        assert governing["spec"]["clusterIP"] == "None", stateful["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_and_pod_is_part_of_video2mp3(overlay: str, manifests: Manifests) -> None:
    for doc in manifests(overlay):
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "video2mp3", doc["metadata"]["name"]
        if doc["kind"] in ("Deployment", "StatefulSet"):
            template = doc["spec"]["template"]["metadata"]["labels"]
            assert template["app.kubernetes.io/part-of"] == "video2mp3"


def test_keda_reads_as_a_user_with_no_rights(manifests: Manifests, staged: Path) -> None:
    docs = manifests("prod")
    (ref,) = named(docs, "TriggerAuthentication", "rabbitmq-management")["spec"]["secretTargetRef"]
    secrets = {}
    for line in (staged / "deploy/k8s/overlays/prod/secrets.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            secrets[key] = value
    user = re.match(r"https?://([^:]+):", secrets[ref["key"]]).group(1)  # type: ignore[union-attr]
    assert user == secrets["RABBITMQ_KEDA_USER"] != secrets["RABBITMQ_DEFAULT_USER"]
    script = containers(docs)["rabbitmq"][1]["lifecycle"]["postStart"]["exec"]["command"][-1]
    assert 'set_user_tags "$RABBITMQ_KEDA_USER" monitoring' in script
    assert "set_permissions -p / \"$RABBITMQ_KEDA_USER\" '^$' '^$' '^$'" in script
    spec = named(docs, "ScaledObject", "converter")["spec"]
    # cooldownPeriod only delays scaling to zero; with a minimum above zero it would mislead.
    assert spec["minReplicaCount"] >= 1
    assert "cooldownPeriod" not in spec


def test_keda_watches_the_queue_of_the_configured_prefix(
    validator: Validator, staged: Path, tmp_path: Path
) -> None:
    shutil.copytree(staged / "deploy", tmp_path / "deploy")
    kustomization = tmp_path / "deploy/k8s/overlays/prod/kustomization.yaml"
    text = kustomization.read_text()
    assert "      - VIDEO2MP3_PUBLIC_URL=" in text
    kustomization.write_text(
        text.replace(
            "      - VIDEO2MP3_PUBLIC_URL=",
            "      - VIDEO2MP3_BROKER_PREFIX=acme-v2m\n      - VIDEO2MP3_PUBLIC_URL=",
        )
    )
    result = validator("kubectl", "kustomize", str(kustomization.parent))
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    (trigger,) = named(docs, "ScaledObject", "converter")["spec"]["triggers"]
    assert trigger["metadata"]["queueName"] == "acme-v2m.converter"
