"""The auth service's HTTP API: ``POST /login``, ``POST /users`` and the JWKS."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from video2mp3 import web
from video2mp3.auth.accounts import Accounts
from video2mp3.health import Health

bp = Blueprint("auth", __name__)


def _accounts() -> Accounts:
    accounts: Accounts = current_app.extensions["video2mp3.accounts"]
    return accounts


@bp.post("/login")
def login() -> Response:
    """Exchange HTTP Basic credentials for a JWT (text/plain).

    The client is the gateway's ``X-Forwarded-For``, else the peer: only the gateway reaches us.
    """
    client = request.access_route[-1] if request.access_route else "unknown"
    return Response(_accounts().login(*web.basic_credentials(), client), mimetype="text/plain")


@bp.post("/users")
def register() -> tuple[Response, int]:
    """Create an account from ``{"email", "password"}``."""
    user = _accounts().register(*web.credentials_body())
    return jsonify(id=user.id, email=user.email), 201


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    """The public keys that verify our tokens."""
    response = jsonify(_accounts().keys.jwks())
    response.cache_control.public = True
    response.cache_control.max_age = 300
    return response


def create_app(accounts: Accounts) -> Flask:
    app = Flask(__name__)
    app.extensions["video2mp3.accounts"] = accounts
    app.register_blueprint(bp)
    web.install(app, Health(dependencies={"database": accounts.users.ping}))
    return app
