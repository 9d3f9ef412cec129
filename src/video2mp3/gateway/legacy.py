"""The original tutorial's endpoints, kept so that its clients work unchanged."""

from __future__ import annotations

from flask import Blueprint, Response, request

from video2mp3.errors import InvalidRequest
from video2mp3.gateway.api import upload_job
from video2mp3.gateway.http import gateway, identity, mp3_response, principal
from video2mp3.web import basic_credentials

bp = Blueprint("legacy", __name__)


@bp.post("/login")
def login() -> Response:
    """HTTP Basic credentials in, a JWT out (text/plain)."""
    return Response(identity().login(*basic_credentials()), mimetype="text/plain")


bp.add_url_rule("/upload", "upload", upload_job, methods=["POST"])


@bp.get("/download")
def download() -> Response:
    """The MP3 with file id ``?fid=``, for its owner only."""
    owner = principal()  # 401 before 422: strangers learn nothing of the parameters
    fid = request.args.get("fid", "")
    if not fid:
        raise InvalidRequest("give the MP3 file id as ?fid=")
    return mp3_response(*gateway().open_mp3_by_fid(owner, fid))
