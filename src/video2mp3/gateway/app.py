"""The gateway's application factory."""

from __future__ import annotations

from flask import Flask

from video2mp3 import web
from video2mp3.gateway import api, legacy, openapi
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.tokens import TokenVerifier
from video2mp3.ports.identity import Identity


def create_app(gateway: Gateway, identity: Identity, checks: dict[str, web.Check]) -> Flask:
    """A Flask app over ``gateway``; ``checks`` are the readiness probes of its dependencies
    beyond the jobs database and the blob store."""
    app = Flask(__name__)
    app.extensions["video2mp3.gateway"] = gateway
    app.extensions["video2mp3.identity"] = identity
    app.extensions["video2mp3.verifier"] = TokenVerifier(identity)
    app.register_blueprint(api.bp)
    app.register_blueprint(legacy.bp)
    app.register_blueprint(openapi.bp)
    web.install(
        app,
        {"database": gateway.jobs.ping, "blobs": gateway.blobs.ping, **checks},
    )
    return app
