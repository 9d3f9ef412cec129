"""The gateway's application factory."""

from __future__ import annotations

from flask import Flask

from video2mp3 import web
from video2mp3.gateway import api, legacy, live, openapi, page, session
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.tokens import TokenVerifier
from video2mp3.gateway.webhooks import Webhooks
from video2mp3.health import Check, Health
from video2mp3.ports.identity import Identity


def create_app(
    gateway: Gateway,
    webhooks: Webhooks,
    identity: Identity,
    dependencies: dict[str, Check],
    *,
    signup_enabled: bool = True,
    public_url: str = "",
    max_streams: int = 24,
    max_streams_per_user: int = live.MAX_PER_USER,
) -> Flask:
    """A Flask app over ``gateway`` and ``webhooks``; ``dependencies`` are the checks of its
    dependencies beyond the jobs database and the blob store (reported by its admin listener);
    ``max_streams`` caps the pages this process keeps live (each holds a thread),
    ``max_streams_per_user`` those of one user."""
    app = Flask(__name__)
    app.config.update(SIGNUP_ENABLED=signup_enabled, PUBLIC_URL=public_url)
    app.extensions["video2mp3.gateway"] = gateway
    app.extensions["video2mp3.webhooks"] = webhooks
    app.extensions["video2mp3.identity"] = identity
    app.extensions["video2mp3.verifier"] = TokenVerifier(identity)
    app.extensions["video2mp3.feed"] = feed = live.JobFeed(
        gateway.jobs, max_streams, max_per_user=max_streams_per_user
    )
    app.extensions[web.ON_STOP] = [feed.close]
    for blueprint in (api.bp, legacy.bp, openapi.bp, page.bp, session.bp, live.bp):
        app.register_blueprint(blueprint)
    dependencies = {"database": gateway.jobs.ping, "blobs": gateway.blobs.ping, **dependencies}
    web.install(app, Health(dependencies=dependencies))
    return app
