"""The original tutorial's endpoints, kept so that its clients work unchanged."""

from __future__ import annotations

from flask import Blueprint, Response, request

from video2mp3.errors import InvalidRequest, Unauthorized
from video2mp3.gateway.api import upload_job
from video2mp3.gateway.http import gateway, identity, mp3_response, principal

bp = Blueprint("legacy", __name__)


@bp.post("/login")
def login() -> Response:
    """HTTP Basic credentials in, a JWT out (text/plain)."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        raise Unauthorized("send your email and password with HTTP Basic authentication")
    return Response(identity().login(auth.username, auth.password or ""), mimetype="text/plain")


bp.add_url_rule("/upload", "upload", upload_job, methods=["POST"])


@bp.get("/download")
def download() -> Response:
    """The MP3 with file id ``?fid=``, for its owner only."""
    fid = request.args.get("fid", "")
    if not fid:
        raise InvalidRequest("give the MP3 file id as ?fid=")
    return mp3_response(*gateway().mp3_by_fid(principal(), fid))
