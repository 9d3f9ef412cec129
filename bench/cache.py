"""The conversion cache against an upload, over real HTTP on the embedded stack:
``python -m bench.cache`` (also part of ``make bench``).

A ``BENCH_CACHE_MB`` MB file (default 500) is uploaded once (a miss: stored, queued, then settled
as a converter would), then again (a hit: hashed while it streams, settled at once). Reported:
each upload's time; for the hit, the time from the gateway reading the body's last byte to its
answer (a ``succeeded`` job), and from the client sending it (socket buffers still hold some);
the SHA-256 of the file alone; and the JSON ``POST /api/v1/jobs`` that lets a client skip the
upload.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

from video2mp3 import bootstrap, signing
from video2mp3.adapters.identity.inprocess import InProcessIdentity
from video2mp3.auth.keys import generate
from video2mp3.converter.exchange import mp3_blob_id
from video2mp3.domain.events import ConversionSucceeded, Event, Owner
from video2mp3.settings import load

SIZE_MB = int(os.environ.get("BENCH_CACHE_MB", "500"))
BLOCK = 1024 * 1024


class LastByte:
    """WSGI middleware: how long the app took after it read the request's last byte."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.after_last_byte = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        stream, last = environ["wsgi.input"], [time.perf_counter()]

        class Timed:
            def read(self, *args: Any) -> bytes:
                data: bytes = stream.read(*args)
                last[0] = time.perf_counter()
                return data

            def readline(self, *args: Any) -> bytes:
                data: bytes = stream.readline(*args)
                last[0] = time.perf_counter()
                return data

        environ["wsgi.input"] = Timed()
        result = self.app(environ, start_response)
        self.after_last_byte = time.perf_counter() - last[0]
        return result


def upload(port: int, token: str, path: Path) -> tuple[float, float, dict[str, Any]]:
    """POST ``path`` as multipart, streamed: total seconds, seconds after the last byte, job."""
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
    tail = b"\r\n--B--\r\n"

    def body() -> Iterator[bytes]:
        yield head
        with path.open("rb") as data:
            yield from iter(lambda: data.read(BLOCK), b"")
        yield tail

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "multipart/form-data; boundary=B",
        "Content-Length": str(len(head) + path.stat().st_size + len(tail)),
    }
    started = time.perf_counter()
    connection.request("POST", "/api/v1/jobs", body=body(), headers=headers)
    sent = time.perf_counter()
    response = connection.getresponse()
    job = json.loads(response.read())
    done = time.perf_counter()
    connection.close()
    return done - started, done - sent, job


def post_json(port: int, token: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection.request("POST", path, body=json.dumps(body), headers=headers)
    response = connection.getresponse()
    answer = response.status, json.loads(response.read() or b"null")
    connection.close()
    return answer


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "keys")
        signing.generate(root / "link-keys")
        settings = load(
            auth_db_url=f"sqlite:///{root}/auth.db",
            jobs_db_url=f"sqlite:///{root}/jobs.db",
            blob_dir=root / "blobs",
            jwt_key_dir=root / "keys",
            link_key_dir=root / "link-keys",
            mongodb_url=None,
            broker_url="memory://",
            max_upload_bytes=4 * 1024**3,
        )
        bootstrap.create_schemas(settings, "auth", "gateway")
        bus, blobs, jobs = (
            bootstrap.bus(settings, "bench"),
            bootstrap.blob_store(settings, "bench"),
            bootstrap.jobs(settings),
        )
        worker, background = bootstrap.gateway_worker(settings, jobs, blobs, bus)
        accounts = bootstrap.accounts(settings)
        app = bootstrap.gateway_app(
            settings, InProcessIdentity(accounts), jobs, blobs, on_queued=background.wake_relay
        )
        timer = LastByte(app.wsgi_app)
        app.wsgi_app = timer  # type: ignore[method-assign]
        stop = threading.Event()
        for loop in worker.loops.values():
            threading.Thread(target=loop, args=(stop,), daemon=True).start()
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        accounts.register("bench@example.com", "bench-password")
        token = accounts.login("bench@example.com", "bench-password", "127.0.0.1")
        video = root / "big.mp4"
        with video.open("wb") as out:
            for _ in range(SIZE_MB):
                out.write(os.urandom(BLOCK))
        started = time.perf_counter()
        digest = hashlib.sha256()
        with video.open("rb") as data:
            for block in iter(lambda: data.read(BLOCK), b""):
                digest.update(block)
        t_hash = time.perf_counter() - started

        t_miss, _, job = upload(server.port, token, video)
        assert job["status"] == "queued", job
        mp3 = blobs.put(
            iter([b"mp3" * 1000]),
            filename="big.mp3",
            content_type="audio/mpeg",
            blob_id=mp3_blob_id(job["id"]),
        )
        owner = Owner(1, "bench@example.com")
        bus.publish(Event(job["id"], ConversionSucceeded(mp3.id, mp3.size, 1.0, owner, "big.mp4")))
        while (found := jobs.get(job["id"], 1)) is None or not found.finished:
            time.sleep(0.01)
        t_hit, t_after_send, hit = upload(server.port, token, video)
        t_after_last_byte = timer.after_last_byte
        assert hit["status"] == "succeeded", hit
        body = {"sha256": digest.hexdigest(), "size": video.stat().st_size, "filename": "big.mp4"}
        started = time.perf_counter()
        status, _ = post_json(server.port, token, "/api/v1/jobs", body)
        t_json = time.perf_counter() - started
        assert status == 201, status
        stop.set()
        server.shutdown()
    return {
        "cache_file_MB": SIZE_MB,
        "upload_miss_s": round(t_miss, 3),
        "upload_hit_s": round(t_hit, 3),
        "hit_last_byte_read_to_succeeded_ms": round(t_after_last_byte * 1000, 1),
        "hit_last_byte_sent_to_answer_ms": round(t_after_send * 1000, 1),
        "sha256_of_file_s": round(t_hash, 3),
        "json_cache_hit_ms": round(t_json * 1000, 1),
    }


if __name__ == "__main__":
    results = run()
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
