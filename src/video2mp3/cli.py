"""The ``video2mp3`` command: the server side (``serve <service>``, ``dev``, ``keygen``,
``admin``) and the client (``login``, ``logout``, ``convert``, ``jobs``, ``get``, ``rm``:
``video2mp3.client``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from video2mp3 import admin, logs
from video2mp3.client import commands as client
from video2mp3.errors import SettingsError, Unavailable
from video2mp3.settings import Settings, load

# The workers' only listener is their admin listener (video2mp3.health).
PORTS = {"gateway": 8080, "auth": 8081, "converter": 8082, "notifier": 8083, "gateway-worker": 8084}
ADMIN_PORTS = {"gateway": 9080, "auth": 9081}


def serve(service: str, port: int, admin_port: int, settings: Settings, check: bool = False) -> int:
    """Run one service in the foreground: web services on gunicorn, workers as their loops;
    with ``check``, only say what the converter would start with (or why it would not)."""
    # Imported here, so that the client's commands start without loading the server's frameworks.
    from video2mp3 import bootstrap, web
    from video2mp3.auth.app import create_app as auth_app
    from video2mp3.worker import run_worker

    if check:
        if service != "converter":
            raise SettingsError("--check: only the converter has start-up checks to show")
        ffmpeg = bootstrap.converter_checks(settings)
        print(f"converter ready: it converts with {ffmpeg.describe()}")
        for passed_over in ffmpeg.passed_over:
            print(f"  passed over {passed_over}")
        return 0
    http = {
        "port": port,
        "admin_port": admin_port,
        "workers": settings.web_workers,
        "threads": settings.web_threads,
        "drain_seconds": settings.drain_seconds,
        "client_timeout": settings.client_timeout_seconds,
    }
    if service == "auth":
        settings.require("auth", "auth_db_url", "jwt_key_dir")
        bootstrap.accounts(settings)  # fail fast, in the master: keys
        bootstrap.create_schemas(settings, service)  # once, in the master: workers would race
        web.serve(lambda: auth_app(bootstrap.accounts(settings)), **http)
        return 0
    if service == "gateway":
        settings.require("the gateway", "jobs_db_url", "auth_url", "link_key_dir")
        bootstrap.links(settings)  # fail fast, in the master: keys
        settings.require_one("the gateway", "mongodb_url", "blob_dir")
        bootstrap.create_schemas(settings, service)
        web.serve(
            lambda: bootstrap.gateway_app(
                settings,
                bootstrap.identity(settings),
                bootstrap.jobs(settings),
                bootstrap.blob_store(settings, "the gateway"),
            ),
            timeout=600,
            # Each live page holds a thread of its own: web_threads stay free for requests.
            **{**http, "threads": settings.web_threads + settings.live_pages},
        )
        return 0
    bus = bootstrap.bus(settings, service)
    if service == "gateway-worker":
        bootstrap.create_schemas(settings, "gateway")
        blobs = bootstrap.blob_store(settings, service)
        worker, _ = bootstrap.gateway_worker(settings, bootstrap.jobs(settings), blobs, bus)
    elif service == "converter":
        worker = bootstrap.converter_worker(settings, bootstrap.blob_store(settings, service), bus)
    else:
        worker = bootstrap.notifier_worker(settings, bootstrap.mailer(settings, service), bus)
        bootstrap.create_schemas(settings, service)  # once every setting is known to be good
    return run_worker(worker.loops, port=admin_port, checks=worker.checks, on_stop=bus.close)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="video2mp3", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run one service (settings from VIDEO2MP3_*)")
    serve_cmd.add_argument("service", choices=sorted(PORTS))
    serve_cmd.add_argument(
        "--port", type=int, help="listen port (default: per service; 0: any free one)"
    )
    serve_cmd.add_argument(
        "--admin-port",
        type=int,
        help="probes and /metrics (default: per service; a worker's only port, --port)",
    )
    serve_cmd.add_argument(
        "--check",
        action="store_true",
        help="converter: show which ffmpeg it would use and why, or why it cannot start; exit",
    )
    dev_cmd = commands.add_parser("dev", help="run all four services in one process on ./var")
    dev_cmd.add_argument("--port", type=int, default=8080)
    dev_cmd.add_argument("--data-dir", type=Path, default=Path("var"))
    keygen_cmd = commands.add_parser(
        "keygen", help="add a new JWT signing key (or, with --links, download link key) to DIR"
    )
    keygen_cmd.add_argument("directory", type=Path)
    keygen_cmd.add_argument(
        "--links", action="store_true", help="an HMAC key for VIDEO2MP3_LINK_KEY_DIR"
    )
    admin.add_commands(commands)
    client.add_commands(commands)
    args = parser.parse_args(argv)
    if hasattr(args, "run"):  # a client command: it needs none of the server's settings
        return client.run(args)

    try:
        settings = load()
        logs.configure(settings.log_level)
        if args.command == "serve":
            # 0 means any free port (never the default one); --port 0 alone frees both.
            port = PORTS[args.service] if args.port is None else args.port
            admin_port = args.admin_port
            if admin_port is None:
                admin_port = ADMIN_PORTS.get(args.service, port) if port else 0
            return serve(args.service, port, admin_port, settings, args.check)
        elif args.command == "dev":
            from video2mp3.dev import run

            run(args.data_dir, args.port)
        elif args.command == "admin":
            return admin.run(args, settings)
        elif args.links:
            from video2mp3.signing import generate as generate_link_key

            print(generate_link_key(args.directory))
        else:
            from video2mp3.auth.keys import generate

            print(generate(args.directory))
    except (SettingsError, Unavailable) as exc:
        print(f"video2mp3: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:  # say, the port is taken
        print(f"video2mp3: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
