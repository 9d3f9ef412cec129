"""The page's browser session: ``/session`` logs in, tells who is logged in, and logs out.

The session is the JWT from the Identity port (the auth service) in an HttpOnly cookie, so page
script never sees it; nothing is kept on the server. Its CSRF token is a MAC of the session
(``http.csrf_token``), handed to the page in the JSON here and sent back in ``X-CSRF-Token`` on
every state-changing request. Logging in takes JSON only, which a cross-site form cannot send
without a CORS preflight that this server never grants, and the Origin is checked when present.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from video2mp3.errors import Unauthorized
from video2mp3.gateway.http import (
    SESSION_COOKIE,
    check_origin,
    csrf_token,
    identity,
    principal,
)
from video2mp3.gateway.tokens import TokenVerifier
from video2mp3.web import credentials_body

bp = Blueprint("session", __name__)


@bp.get("/session")
def who() -> Response:
    """``{"email", "csrf"}`` of the logged-in user; ``{"email": null}`` when nobody is (not
    an error: every visit starts by asking)."""
    session = request.cookies.get(SESSION_COOKIE, "")
    verifier: TokenVerifier = current_app.extensions["video2mp3.verifier"]
    try:
        user = verifier.verify(session)
    except Unauthorized:
        return jsonify(email=None)
    return jsonify(email=user.email, csrf=csrf_token(session))


@bp.post("/session")
def log_in() -> Response:
    """``{"email", "password"}`` in: the session cookie set, ``{"email", "csrf"}`` out."""
    check_origin()
    email, password = credentials_body()
    session = identity().login(email, password)
    response = jsonify(email=email, csrf=csrf_token(session))
    response.set_cookie(
        SESSION_COOKIE,
        session,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure or current_app.config["PUBLIC_URL"].startswith("https:"),
        path="/",
    )
    return response


@bp.delete("/session")
def log_out() -> Response:
    """Forget the session cookie (CSRF-checked like every other change)."""
    principal()
    response = Response(status=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax")
    return response
