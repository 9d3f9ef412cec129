"""The versioned JSON API: ``/api/v1/users`` and ``/api/v1/jobs``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, url_for

from video2mp3.errors import InvalidRequest
from video2mp3.gateway.http import gateway, identity, job_json, mp3_response, principal
from video2mp3.web import credentials_body

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_PAGE = 100


@bp.post("/users")
def create_user() -> tuple[Response, int]:
    """Sign up with ``{"email", "password"}``: 201, 409 if taken, 422 if invalid."""
    return jsonify(identity().register(*credentials_body())), 201


def upload_job() -> Response:
    """Store the uploaded video and queue its conversion: 202 with the job."""
    job = gateway().upload(
        principal(),
        request.stream,
        boundary=request.mimetype_params.get("boundary")
        if request.mimetype == "multipart/form-data"
        else None,
        content_length=request.content_length,
        bitrate=request.args.get("bitrate"),
    )
    response = jsonify(job_json(job))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response


bp.add_url_rule("/jobs", "create_job", upload_job, methods=["POST"])


@bp.get("/jobs")
def list_jobs() -> Response:
    """The caller's jobs, newest first: ``?limit=`` (1..100, default 20) and ``?offset=``."""
    try:
        limit = int(request.args.get("limit", 20))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        limit = offset = -1
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidRequest(f"limit must be 1..{MAX_PAGE} and offset at least 0")
    jobs, total = gateway().jobs.page(principal().user_id, limit=limit, offset=offset)
    return jsonify(items=[job_json(j) for j in jobs], total=total, limit=limit, offset=offset)


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """One of the caller's jobs."""
    return jsonify(job_json(gateway().job(principal(), job_id)))


@bp.get("/jobs/<job_id>/mp3")
def get_mp3(job_id: str) -> Response:
    """The job's MP3, streamed, with Range support."""
    owner = principal()
    return mp3_response(*gateway().open_mp3(owner, gateway().jobs.get(job_id, owner.user_id)))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    """Delete the job, its video and its MP3."""
    gateway().delete(principal(), job_id)
    return Response(status=204)
