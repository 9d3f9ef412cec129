"""The gateway's application factory."""

from __future__ import annotations

from flask import Flask

from video2mp3 import web
from video2mp3.gateway import api, legacy, openapi
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.tokens import TokenVerifier
from video2mp3.gateway.webhooks import Webhooks
from video2mp3.health import Check, Health
from video2mp3.ports.identity import Identity


def create_app(
    gateway: Gateway, webhooks: Webhooks, identity: Identity, dependencies: dict[str, Check]
) -> Flask:
    """A Flask app over ``gateway`` and ``webhooks``; ``dependencies`` are the checks of its
    dependencies beyond the jobs database and the blob store (reported by its admin listener)."""
    app = Flask(__name__)
    app.extensions["video2mp3.gateway"] = gateway
    app.extensions["video2mp3.webhooks"] = webhooks
    app.extensions["video2mp3.identity"] = identity
    app.extensions["video2mp3.verifier"] = TokenVerifier(identity)
    app.register_blueprint(api.bp)
    app.register_blueprint(legacy.bp)
    app.register_blueprint(openapi.bp)
    dependencies = {"database": gateway.jobs.ping, "blobs": gateway.blobs.ping, **dependencies}
    web.install(app, Health(dependencies=dependencies))
    return app
