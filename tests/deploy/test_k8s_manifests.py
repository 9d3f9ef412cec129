"""Kubernetes manifests: each overlay renders with kustomize and passes strict schema validation.

Beyond the schemas: every workload is locked down and probed, every Secret and ConfigMap key it
reads exists, the network policies isolate what they should, RabbitMQ outlasts a conversion, and
KEDA's objects (custom resources that kubernetes-validate has no schema for) have the right shape.
"""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.rendered import Doc, named, workloads

OVERLAYS = ("dev", "prod")
# The oldest Kubernetes release the big managed services still run, and the newest.
KUBERNETES_VERSIONS = ("1.33", "1.37")
CUSTOM_KINDS = ("ScaledObject", "TriggerAuthentication")
# Created out of band, one file per signing key (docs/DEPLOY.md).
UNMANAGED_SECRETS = {"video2mp3-jwt-keys", "video2mp3-link-keys"}

Validator = Callable[..., subprocess.CompletedProcess[str]]


# The parts of KEDA's keda.sh/v1alpha1 CRDs these manifests may use, closed to unknown fields as
# the API server's strict field validation would be. KEDA's HPA behavior is checked separately.
def keda_schema(kind: str, spec: Doc) -> Doc:
    """A KEDA ``keda.sh/v1alpha1`` object of ``kind`` whose spec follows ``spec``."""
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": kind},
            "metadata": {"type": "object"},
            "spec": spec,
        },
    }


SCALED_OBJECT = keda_schema(
    "ScaledObject",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["scaleTargetRef", "triggers"],
        "properties": {
            "scaleTargetRef": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    k: {"type": "string"}
                    for k in ("apiVersion", "kind", "name", "envSourceContainerName")
                },
            },
            **{
                k: {"type": "integer", "minimum": 0}
                for k in (
                    "pollingInterval",
                    "cooldownPeriod",
                    "initialCooldownPeriod",
                    "idleReplicaCount",
                    "minReplicaCount",
                    "maxReplicaCount",
                )
            },
            "advanced": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "restoreToOriginalReplicaCount": {"type": "boolean"},
                    "horizontalPodAutoscalerConfig": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "behavior": {"type": "object"},
                        },
                    },
                },
            },
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["type", "metadata"],
                    "properties": {
                        "type": {"type": "string"},
                        "name": {"type": "string"},
                        "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                        "useCachedMetrics": {"type": "boolean"},
                        "metadata": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "authenticationRef": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name"],
                            "properties": {
                                "name": {"type": "string"},
                                "kind": {
                                    "enum": [
                                        "TriggerAuthentication",
                                        "ClusterTriggerAuthentication",
                                    ]
                                },
                            },
                        },
                    },
                },
            },
        },
    },
)
TRIGGER_AUTHENTICATION = keda_schema(
    "TriggerAuthentication",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "secretTargetRef": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["parameter", "name", "key"],
                    "properties": {k: {"type": "string"} for k in ("parameter", "name", "key")},
                },
            },
        },
    },
)


@pytest.fixture(scope="module")
def problems(validator: Validator) -> Callable[[str], list[str]]:
    """Return a function listing what `kubernetes-validate --strict` finds wrong in a stream.

    kubernetes-validate only warns, and exits 0, on a kind it has no schema for: that would let a
    misspelt apiVersion through, so such a warning counts unless it is about CUSTOM_KINDS.
    """

    def check(stream: str) -> list[str]:
        found = []
        for version in KUBERNETES_VERSIONS:  # one a run: it reads "-" (stdin) once per version
            result = validator(
                "kubernetes-validate", "--strict", "--quiet", "-k", version, "-", stdin=stream
            )
            found += [
                line
                for line in result.stdout.splitlines()
                if not re.match(rf"WARN .* kind ({'|'.join(CUSTOM_KINDS)}) ", line)
            ]
            if result.returncode and not found:
                found = [f"exit status {result.returncode}: {result.stderr}"]
        return found

    return check


def references(node: Any) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None) for every Secret and ConfigMap that `node` reads."""
    if isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        for field, value in node.items():
            if field in ("secretKeyRef", "secretRef", "configMapKeyRef", "configMapRef"):
                kind = "Secret" if field.startswith("secret") else "ConfigMap"
                yield kind, value["name"], value.get("key")
            elif field == "secret" and "secretName" in value:
                yield "Secret", value["secretName"], None
            elif field == "configMap" and "name" in value:
                yield "ConfigMap", value["name"], None
            elif field == "secretTargetRef":
                yield from (("Secret", ref["name"], ref["key"]) for ref in value)
            else:
                yield from references(value)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_strict_validation(
    overlay: str, render: Callable[[str], str], problems: Callable[[str], list[str]]
) -> None:
    assert problems(render(overlay)) == []


BREAKAGES: dict[str, Callable[[Doc], object]] = {
    "unknown field": lambda d: d["spec"]["template"]["spec"]["containers"][0].update(
        imagePullPolice="Always"
    ),
    "wrong type": lambda d: d["spec"].update(replicas="two"),
    "unknown apiVersion": lambda d: d.update(apiVersion="apps/v2"),
}


@pytest.mark.parametrize("breakage", BREAKAGES.values(), ids=BREAKAGES)
def test_broken_manifest_is_rejected(
    breakage: Callable[[Doc], object],
    manifests: Callable[[str], list[Doc]],
    problems: Callable[[str], list[str]],
) -> None:
    deployment = copy.deepcopy(named(manifests("dev"), "Deployment", "gateway"))
    breakage(deployment)
    found = problems(yaml.safe_dump(deployment))
    assert len(found) == len(KUBERNETES_VERSIONS), found
    assert all("deployment/gateway" in line or "kind Deployment" in line for line in found), found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_locked_down_probed_and_bounded(
    overlay: str, manifests: Callable[[str], list[Doc]]
) -> None:
    found = list(workloads(manifests(overlay)))
    assert {name for name, _, _ in found} >= {
        "auth",
        "gateway",
        "converter",
        "notifier",
        "rabbitmq",
    }
    for name, pod, container in found:
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, name
        scratch = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        assert any(
            mount["mountPath"] == "/tmp" and mount["name"] in scratch
            for mount in container["volumeMounts"]
        ), name
        assert "readinessProbe" in container, name
        assert "livenessProbe" in container, name
        assert set(container["resources"]["requests"]) == {"cpu", "memory", "ephemeral-storage"}
        assert set(container["resources"]["limits"]) == {"cpu", "memory"}, name


def test_services_probe_their_admin_port(
    manifests: Callable[[str], list[Doc]],
    service_ports: dict[str, int],
    admin_ports: dict[str, int],
) -> None:
    docs = manifests("prod")
    pods = {name: container for name, _, container in workloads(docs)}
    for service, port in service_ports.items():
        container = pods[service]
        listeners = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert listeners["admin"] == admin_ports[service], service
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in container:
                assert container[probe]["timeoutSeconds"] >= 2, (service, probe)
        # The admin port is never what a Service (so the Ingress or the gateway) forwards to.
        if service in ("gateway", "auth"):
            assert listeners["http"] == port
            forwarded = named(docs, "Service", service)["spec"]["ports"]
            assert [p["targetPort"] for p in forwarded] == ["http"], service


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_and_setting_read_exists(
    overlay: str, manifests: Callable[[str], list[Doc]]
) -> None:
    docs = manifests(overlay)
    data = {
        (d["kind"], d["metadata"]["name"]): d.get("data", {})
        for d in docs
        if d["kind"] in ("Secret", "ConfigMap")
    }
    read = set(references(docs))
    assert read
    for kind, name, key in read:
        if name in UNMANAGED_SECRETS:
            continue
        assert (kind, name) in data, f"{kind} {name} is read but not generated"
        assert key is None or key in data[kind, name], f"{kind} {name} lacks {key}"


def test_rabbitmq_outlasts_the_longest_conversion(manifests: Callable[[str], list[Doc]]) -> None:
    docs = manifests("prod")
    conf = named(docs, "ConfigMap", "rabbitmq-config")["data"]["rabbitmq.conf"]
    (timeout_ms,) = re.findall(r"^consumer_timeout\s*=\s*(\d+)$", conf, re.MULTILINE)
    settings = named(docs, "ConfigMap", "video2mp3-settings")["data"]
    assert int(timeout_ms) > 1000 * int(settings["VIDEO2MP3_CONVERSION_TIMEOUT_SECONDS"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_isolate_the_services(
    overlay: str, manifests: Callable[[str], list[Doc]]
) -> None:
    policies = {
        d["metadata"]["name"]: d["spec"] for d in manifests(overlay) if d["kind"] == "NetworkPolicy"
    }
    assert policies["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    from_ingress = [
        spec["podSelector"]
        for spec in policies.values()
        for rule in spec.get("ingress", [])
        for peer in rule["from"]
        if peer.get("namespaceSelector", {})
        .get("matchLabels", {})
        .get("kubernetes.io/metadata.name")
        == "ingress-nginx"
    ]
    assert from_ingress == [{"matchLabels": {"app.kubernetes.io/name": "gateway"}}]
    converter = policies["converter-egress"]
    assert converter["policyTypes"] == ["Egress"]
    assert all(rule.get("to") for rule in converter["egress"])
    ports = {port["port"] for rule in converter["egress"] for port in rule["ports"]}
    assert ports == {53, 5672, 27017}


def test_keda_scales_the_converter_on_its_queue(
    manifests: Callable[[str], list[Doc]], problems: Callable[[str], list[str]]
) -> None:
    docs = manifests("prod")
    scaled = named(docs, "ScaledObject", "converter")
    jsonschema.validate(scaled, SCALED_OBJECT)
    jsonschema.validate(
        named(docs, "TriggerAuthentication", "rabbitmq-management"), TRIGGER_AUTHENTICATION
    )
    spec = scaled["spec"]
    assert named(docs, "Deployment", spec["scaleTargetRef"]["name"])
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == "video2mp3.converter"
    # A second HPA on the same Deployment would fight the one KEDA makes.
    assert not [
        d
        for d in docs
        if d["kind"] == "HorizontalPodAutoscaler"
        and d["spec"]["scaleTargetRef"]["name"] == spec["scaleTargetRef"]["name"]
    ]
    # That HPA carries the ScaledObject's behavior, which must be valid there.
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-converter"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "converter"},
            "minReplicas": spec["minReplicaCount"],
            "maxReplicas": spec["maxReplicaCount"],
            "behavior": spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    assert problems(yaml.safe_dump(hpa)) == []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scaled, "spec": {**spec, "minReplicas": 1}}, SCALED_OBJECT)


def test_real_secrets_are_ignored_by_git() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in (".env", *(f"deploy/k8s/overlays/{o}/secrets.env" for o in OVERLAYS)):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=root, check=False)
        assert result.returncode == 0, f"{path} is not ignored by git"
