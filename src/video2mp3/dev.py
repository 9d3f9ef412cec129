"""``video2mp3 dev``: all four services in one process, on embedded parts under one folder.

SQLite for users and jobs, a local blob directory, the in-process bus and a mail outbox folder;
the gateway is served by werkzeug's threaded server. For a laptop, never for production.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from werkzeug.serving import make_server

from video2mp3 import bootstrap, signing
from video2mp3.adapters.identity.inprocess import InProcessIdentity
from video2mp3.auth.keys import generate
from video2mp3.serving import DevRequestHandler
from video2mp3.settings import load

log = logging.getLogger(__name__)

USAGE = """\
video2mp3 is running on {url}  (data in {data}, Ctrl-C to stop)

Open {url} in a browser, or use the API:

  curl -X POST {url}/api/v1/users -H 'Content-Type: application/json' \\
       -d '{{"email": "me@example.com", "password": "correct horse"}}'
  TOKEN=$(curl -s -X POST -u 'me@example.com:correct horse' {url}/login)
  curl -H "Authorization: Bearer $TOKEN" -F file=@video.mp4 {url}/api/v1/jobs
  curl -H "Authorization: Bearer $TOKEN" {url}/api/v1/jobs/<id>
  curl -H "Authorization: Bearer $TOKEN" -o song.mp3 {url}/api/v1/jobs/<id>/mp3

Or with the client: video2mp3 login --server {url}; video2mp3 convert video.mp4
Emails land in {data}/outbox; the API is described at {url}/openapi.json
"""


def run(data: Path, port: int, *, host: str = "127.0.0.1") -> None:
    data = data.resolve()
    url = f"http://{host}:{port}"
    settings = load(
        auth_db_url=f"sqlite:///{data}/auth.db",
        jobs_db_url=f"sqlite:///{data}/jobs.db",
        notifier_db_url=f"sqlite:///{data}/notifier.db",
        broker_url="memory://",
        mongodb_url=None,
        smtp_url=None,
        blob_dir=data / "blobs",
        mail_outbox_dir=data / "outbox",
        jwt_key_dir=data / "keys",
        link_key_dir=data / "link-keys",
        public_url=url,
        fan_out_after_seconds=0,  # one converter: its cores share a long input
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # we log requests ourselves
    if not any((data / "keys").glob("*.pem")):
        generate(data / "keys")
    if not any((data / "link-keys").glob("*.key")):
        signing.generate(data / "link-keys")
    bootstrap.create_schemas(settings, "auth", "gateway", "notifier")
    bus = bootstrap.bus(settings, "dev")
    blobs = bootstrap.blob_store(settings, "dev")
    jobs = bootstrap.jobs(settings)
    gateway_worker, background = bootstrap.gateway_worker(settings, jobs, blobs, bus)
    workers = [
        gateway_worker,
        bootstrap.converter_worker(settings, blobs, bus),
        bootstrap.notifier_worker(settings, bootstrap.mailer(settings, "dev"), bus),
    ]
    identity = InProcessIdentity(bootstrap.accounts(settings))
    app = bootstrap.gateway_app(settings, identity, jobs, blobs, on_queued=background.wake_relay)
    stop = threading.Event()
    for worker in workers:
        for name, loop in worker.loops.items():
            threading.Thread(target=loop, args=(stop,), name=name, daemon=True).start()
    handler = type("Handler", (DevRequestHandler,), {"timeout": settings.client_timeout_seconds})
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(USAGE.format(url=url, data=data), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()
