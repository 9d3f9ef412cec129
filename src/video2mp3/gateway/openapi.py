"""``GET /openapi.json``: the gateway's API described in OpenAPI 3.1."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from video2mp3.domain.options import describe
from video2mp3.domain.webhooks import EVENTS

bp = Blueprint("openapi", __name__)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "An error: a stable code and a human message")
_ERRORS = {str(s): _ERROR for s in (401, 404, 422)}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_JOB_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]
# Every conversion option, as a query parameter or a form field before the file (same names).
_OPTIONS: dict[str, Any] = describe()["properties"]
_UPLOAD = {
    "security": _BEARER,
    "parameters": [
        {"name": name, "in": "query", "schema": schema, "description": schema.get("description")}
        for name, schema in _OPTIONS.items()
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {**_OPTIONS, "file": {"type": "string", "format": "binary"}},
                    "additionalProperties": False,
                },
                "encoding": {"file": {"contentType": "*/*"}},
            }
        },
    },
    "responses": {"202": _json(_ref("Job"), "The job, queued"), "413": _ERROR, **_ERRORS},
}
_MP3 = {
    "200": {"description": "The MP3", "content": {"audio/mpeg": {}}},
    "206": {"description": "Part of the MP3 (Range)", "content": {"audio/mpeg": {}}},
    **_ERRORS,
}
_LOGIN = {
    "summary": "Exchange HTTP Basic credentials for a JWT",
    "security": [{"basic": []}],
    "responses": {"200": {"description": "The JWT", "content": {"text/plain": {}}}, "401": _ERROR},
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "video2mp3", "version": "1"},
    "paths": {
        "/": {"get": {"summary": "Where to start", "responses": {"200": {"description": "Links"}}}},
        "/login": {"post": _LOGIN},
        "/upload": {"post": {"summary": "Upload a video (tutorial-compatible)", **_UPLOAD}},
        "/download": {
            "get": {
                "summary": "Download an MP3 by its file id (tutorial-compatible)",
                "security": _BEARER,
                "parameters": [
                    {"name": "fid", "in": "query", "required": True, "schema": {"type": "string"}}
                ],
                "responses": _MP3,
            }
        },
        "/api/v1/users": {
            "post": {
                "summary": "Sign up",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Credentials")}},
                },
                "responses": {
                    "201": _json(_ref("User"), "The new account"),
                    "403": _ERROR,
                    "409": _ERROR,
                    "422": _ERROR,
                },
            }
        },
        "/api/v1/jobs": {
            "post": {"summary": "Upload a video to convert", **_UPLOAD},
            "get": {
                "summary": "The caller's jobs, newest first",
                "security": _BEARER,
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                ],
                "responses": {"200": _json(_ref("JobPage"), "One page of jobs"), **_ERRORS},
            },
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "summary": "One job",
                "security": _BEARER,
                "parameters": _JOB_ID,
                "responses": {"200": _json(_ref("Job"), "The job"), **_ERRORS},
            },
            "delete": {
                "summary": "Delete a job, its video and its MP3",
                "security": _BEARER,
                "parameters": _JOB_ID,
                "responses": {"204": {"description": "Deleted"}, **_ERRORS},
            },
        },
        "/api/v1/jobs/{job_id}/mp3": {
            "get": {
                "summary": "The job's MP3",
                "security": _BEARER,
                "parameters": _JOB_ID,
                "responses": _MP3,
            }
        },
        "/api/v1/webhooks": {
            "post": {
                "summary": "Register an endpoint for job.succeeded/job.failed (Standard Webhooks)",
                "description": "The URL must resolve to public addresses only; the signing"
                " secret is in this answer only. 422 webhook_url_refused says why a URL is not"
                " accepted; 409 past the limit per user.",
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewWebhook")}},
                },
                "responses": {
                    "201": _json(_ref("Webhook"), "The endpoint, with its secret"),
                    "409": _ERROR,
                    **_ERRORS,
                },
            },
            "get": {
                "summary": "The caller's webhook endpoints (without secrets)",
                "security": _BEARER,
                "responses": {"200": _json(_ref("WebhookList"), "The endpoints"), **_ERRORS},
            },
        },
        "/api/v1/webhooks/{webhook_id}": {
            "delete": {
                "summary": "Delete an endpoint",
                "security": _BEARER,
                "parameters": [
                    {
                        "name": "webhook_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"204": {"description": "Deleted"}, **_ERRORS},
            }
        },
        # Readiness and /metrics are on the admin port, not part of the public API.
        "/healthz": {
            "get": {"summary": "The server answers", "responses": {"200": {"description": "Up"}}}
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}
        },
    },
    "components": {
        "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        },
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            },
            "Options": describe(),
            "Credentials": {
                "type": "object",
                "required": ["email", "password"],
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "password": {"type": "string", "minLength": 8},
                },
            },
            "User": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "email": {"type": "string"}},
            },
            "Job": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "status": {"enum": ["queued", "processing", "succeeded", "failed"]},
                    "progress": {"type": "number", "minimum": 0, "maximum": 1},
                    "error": {
                        "type": ["object", "null"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    },
                    "filename": {"type": "string"},
                    "options": _ref("Options"),
                    "bitrate_kbps": {"type": ["integer", "null"]},
                    "mp3_fid": {"type": ["string", "null"]},
                    "mp3_size": {"type": ["integer", "null"]},
                    "duration": {"type": ["number", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "links": {"type": "object"},
                },
            },
            "NewWebhook": {
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "format": "uri", "maxLength": 2048},
                    "events": {
                        "type": "array",
                        "items": {"enum": list(EVENTS)},
                        "minItems": 1,
                        "description": "default: all",
                    },
                },
            },
            "Webhook": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "url": {"type": "string"},
                    "events": {"type": "array", "items": {"enum": list(EVENTS)}},
                    "secret": {"type": "string", "description": "whsec_...; at creation only"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "disabled": {"type": "boolean"},
                    "disabled_reason": {"type": ["string", "null"]},
                },
            },
            "WebhookList": {
                "type": "object",
                "properties": {"items": {"type": "array", "items": _ref("Webhook")}},
            },
            "JobPage": {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": _ref("Job")},
                    "total": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "offset": {"type": "integer"},
                },
            },
        },
    },
}


@bp.get("/")
def index() -> Response:
    """Where to start: the API description and the main endpoints."""
    return jsonify(
        service="video2mp3",
        openapi="/openapi.json",
        sign_up="POST /api/v1/users",
        login="POST /login (HTTP Basic)",
        upload="POST /api/v1/jobs (multipart field 'file')",
        jobs="GET /api/v1/jobs",
        webhooks="POST /api/v1/webhooks",
    )


@bp.get("/openapi.json")
def spec() -> Response:
    """This API's OpenAPI document."""
    return jsonify(SPEC)
