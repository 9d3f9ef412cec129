"""The admin listener: liveness and readiness from the process's own state, dependencies beside."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from prometheus_client import REGISTRY

from video2mp3 import web
from video2mp3.errors import Unavailable
from video2mp3.health import Health, listen


class Probe:
    """A check that fails while ``down`` and counts its calls."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.down:
            raise Unavailable("gone")


@pytest.fixture
def listener() -> Iterator[tuple[Health, Probe, Probe, str]]:
    loop, broker = Probe(), Probe()
    health = Health({"loop": loop}, {"broker": broker}, interval=3600)
    server = health.serve(listen(0, "127.0.0.1"))
    yield health, loop, broker, f"http://127.0.0.1:{server.server_address[1]}"
    health.close()
    server.shutdown()
    server.server_close()


def test_a_dependency_outage_is_reported_without_failing_a_probe(
    listener: tuple[Health, Probe, Probe, str],
) -> None:
    health, _, broker, base = listener
    broker.down = True
    health.check_dependencies()
    ready = requests.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["dependencies"] == {"broker": "gone"}
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    assert (
        'video2mp3_dependency_up{dependency="broker"} 0.0'
        in requests.get(f"{base}/metrics", timeout=5).text
    )


def test_probes_answer_from_cached_dependency_checks(
    listener: tuple[Health, Probe, Probe, str],
) -> None:
    _, loop, broker, base = listener
    calls = broker.calls  # the watcher's first round
    for _ in range(5):
        requests.get(f"{base}/readyz", timeout=5)
    assert broker.calls == calls
    assert loop.calls >= 5  # the process's own state is asked every time


def test_a_dead_loop_fails_liveness_and_readiness(
    listener: tuple[Health, Probe, Probe, str],
) -> None:
    _, loop, _, base = listener
    loop.down = True
    for path in ("/healthz", "/readyz"):
        response = requests.get(f"{base}{path}", timeout=5)
        assert response.status_code == 503, path
        assert response.json()["failures"] == {"loop": "gone"}


def test_a_stopping_process_is_alive_but_not_ready(
    listener: tuple[Health, Probe, Probe, str],
) -> None:
    health, _, _, base = listener
    health.stopping.set()
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    ready = requests.get(f"{base}/readyz", timeout=5)
    assert (ready.status_code, ready.json()["failures"]) == (503, {"process": "stopping"})
    assert requests.get(f"{base}/nope", timeout=5).status_code == 404


def test_requests_in_flight_are_counted_while_they_run() -> None:
    app = Flask(__name__)
    web.install(app, Health())

    @app.get("/slow")
    def slow() -> str:
        return str(REGISTRY.get_sample_value("http_requests_in_flight"))

    before = REGISTRY.get_sample_value("http_requests_in_flight")
    assert app.test_client().get("/slow").text == str(before + 1)
    assert REGISTRY.get_sample_value("http_requests_in_flight") == before
    assert app.test_client().get("/healthz").get_json() == {"status": "ok"}
