"""The versioned JSON API: ``/api/v1/users``, ``/api/v1/jobs`` and ``/api/v1/webhooks``. Each
view parses, calls one use case of ``Gateway`` (or ``Webhooks``) and serialises."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from video2mp3.errors import InvalidRequest
from video2mp3.gateway.http import (
    gateway,
    identity,
    int_arg,
    job_json,
    mp3_response,
    principal,
    upload_from_request,
)
from video2mp3.gateway.webhooks import Webhooks, webhook_json
from video2mp3.web import credentials_body

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.post("/users")
def create_user() -> tuple[Response, int]:
    """Sign up with ``{"email", "password"}``: 201, 409 if taken, 422 if invalid."""
    return jsonify(identity().register(*credentials_body())), 201


def upload_job() -> Response:
    """Store the uploaded video and queue its conversion: 202 with the job; 201 with a finished
    job when the cache holds its conversion. A JSON body asks the cache alone: 201, or 409
    ``upload_needed``."""
    job = upload_from_request(principal())
    response = jsonify(job_json(job))
    response.status_code = 201 if job.finished else 202
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response


bp.add_url_rule("/jobs", "create_job", upload_job, methods=["POST"])


@bp.get("/jobs")
def list_jobs() -> Response:
    """The caller's jobs, newest first: ``?limit=`` (1..100, default 20) and ``?offset=``."""
    page = gateway().page(principal(), limit=int_arg("limit", 20), offset=int_arg("offset", 0))
    return jsonify(
        items=[job_json(j) for j in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    """One of the caller's jobs."""
    return jsonify(job_json(gateway().job(principal(), job_id)))


@bp.get("/jobs/<job_id>/mp3")
def get_mp3(job_id: str) -> Response:
    """The job's MP3, streamed, with Range support."""
    return mp3_response(*gateway().open_mp3(principal(), job_id))


@bp.delete("/jobs/<job_id>")
def delete_job(job_id: str) -> Response:
    """Delete the job, its video and its MP3."""
    gateway().delete(principal(), job_id)
    return Response(status=204)


def webhooks() -> Webhooks:
    service: Webhooks = current_app.extensions["video2mp3.webhooks"]
    return service


@bp.post("/webhooks")
def create_webhook() -> tuple[Response, int]:
    """Register ``{"url", "events"}``: 201 with the signing secret, shown this once."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest('send {"url": "https://...", "events": ["job.succeeded"]} as JSON')
    webhook = webhooks().register(principal(), body.get("url"), body.get("events"))
    return jsonify(webhook_json(webhook, with_secret=True)), 201


@bp.get("/webhooks")
def list_webhooks() -> Response:
    """The caller's webhooks (without their secrets)."""
    return jsonify(items=[webhook_json(w) for w in webhooks().list(principal())])


@bp.delete("/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str) -> Response:
    """Stop sending to this endpoint."""
    webhooks().delete(principal(), webhook_id)
    return Response(status=204)
