"""``GET /openapi.json``: the gateway's API described in OpenAPI 3.1."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from video2mp3.domain.options import describe
from video2mp3.domain.webhooks import EVENTS, MAX_URL
from video2mp3.gateway.service import MAX_OFFSET, MAX_PAGE

bp = Blueprint("openapi", __name__)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "An error: a stable code and a human message")
_ERRORS = {str(s): _ERROR for s in (401, 404, 422)}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 20}
_OFFSET = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}
_JOB_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def _sent_or_omitted(option: dict[str, Any]) -> dict[str, Any]:
    """An option as a query parameter or form field: given or left out, never ``null`` (which
    would travel as the text "null")."""
    kept = [branch for branch in option.get("anyOf", []) if branch.get("type") != "null"]
    if len(kept) != 1:
        return option
    rest = {k: v for k, v in option.items() if k not in ("anyOf", "default")}
    return {**rest, **kept[0]}


# Every conversion option, as a query parameter or a form field before the file (same names).
_OPTIONS: dict[str, Any] = {
    name: _sent_or_omitted(option) for name, option in describe()["properties"].items()
}
_CACHED = {
    "type": "object",
    "required": ["sha256", "size", "filename"],
    "properties": {
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "size": {"type": "integer", "minimum": 1},
        "filename": {"type": "string"},
        "options": _ref("Options"),
    },
    "description": "A file named by its SHA-256, not sent: the caller's own conversions answer",
}
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
                    "properties": {
                        **_OPTIONS,
                        "file": {"type": "string", "format": "binary", "minLength": 1},
                    },
                    "additionalProperties": False,
                },
                "encoding": {"file": {"contentType": "*/*"}},
            },
            "application/json": {"schema": _CACHED},
        },
    },
    "responses": {
        "201": _json(_ref("Job"), "A finished job: the cache held this conversion"),
        "202": _json(_ref("Job"), "The job, queued"),
        "409": _json(_ref("Error"), "upload_needed: the cache does not hold it (JSON body)"),
        "413": _json(_ref("Error"), "too_large, or quota_exceeded"),
        "429": _json(_ref("Error"), "too_many_jobs: retry after Retry-After seconds"),
        **_ERRORS,
    },
}
_GONE = {"410": _json(_ref("Error"), "expired: the job's keeping time is over")}
_MP3 = {
    "200": {"description": "The MP3", "content": {"audio/mpeg": {}}},
    "206": {"description": "Part of the MP3 (Range)", "content": {"audio/mpeg": {}}},
    "304": {"description": "Not modified (If-None-Match matched the strong ETag)"},
    **_ERRORS,
    **_GONE,
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
        "/": {
            "get": {
                "summary": "The web page; where to start, as JSON, for Accept: application/json",
                "responses": {"200": {"description": "The page, or links"}},
            }
        },
        "/mp3/{token}": {
            "get": {
                "summary": "An MP3 through a signed, expiring link (a job's download_url)",
                "parameters": [
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {**_MP3, "403": _ERROR},
            }
        },
        "/session": {
            "get": {
                "summary": "The page's session: the user's email and CSRF token, or email null",
                "responses": {"200": _json(_ref("Session"), "The session")},
            },
            "post": {
                "summary": "Log in the page: sets an HttpOnly session cookie",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Credentials")}},
                },
                "responses": {
                    "200": _json(_ref("Session"), "Logged in"),
                    "401": _ERROR,
                    "422": _ERROR,
                },
            },
            "delete": {
                "summary": "Log out the page (needs X-CSRF-Token)",
                "responses": {"204": {"description": "Logged out"}, "401": _ERROR, "403": _ERROR},
            },
        },
        "/api/v1/events": {
            "get": {
                "summary": "The caller's job changes as Server-Sent Events (event: job)",
                "security": _BEARER,
                "responses": {
                    "200": {"description": "An event stream", "content": {"text/event-stream": {}}},
                    "503": _ERROR,
                    **_ERRORS,
                },
            }
        },
        "/login": {"post": _LOGIN},
        "/upload": {"post": {"summary": "Upload a video (tutorial-compatible)", **_UPLOAD}},
        "/download": {
            "get": {
                "summary": "Download an MP3 by its file id (tutorial-compatible)",
                "security": _BEARER,
                "parameters": [
                    {
                        "name": "fid",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    }
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
                    {"name": "limit", "in": "query", "schema": _LIMIT},
                    {"name": "offset", "in": "query", "schema": _OFFSET},
                ],
                "responses": {"200": _json(_ref("JobPage"), "One page of jobs"), **_ERRORS},
            },
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "summary": "One job",
                "security": _BEARER,
                "parameters": _JOB_ID,
                "responses": {"200": _json(_ref("Job"), "The job"), **_ERRORS, **_GONE},
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
                "description": "An http(s) URL without spaces or control characters (else 422"
                " invalid_request, naming the problem) that resolves to public addresses only"
                " (else 422 webhook_url_refused, saying why); the signing secret is in this"
                " answer only. 409 past the limit per user.",
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
                    "email": {"type": "string", "format": "email", "maxLength": 254},
                    "password": {"type": "string", "minLength": 8, "maxLength": 1024},
                },
            },
            "Session": {
                "type": "object",
                "properties": {
                    "email": {"type": ["string", "null"]},
                    "csrf": {"type": "string", "description": "send as X-CSRF-Token"},
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
                    "download_url": {
                        "type": ["string", "null"],
                        "description": "a signed link to the MP3 that needs no header; expires",
                    },
                    "duration": {"type": ["number", "null"]},
                    "created_at": {"type": "string", "format": "date-time"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "expires_at": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "When the job and its MP3 are deleted; null: kept",
                    },
                    "links": {"type": "object"},
                },
            },
            "NewWebhook": {
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "format": "uri", "maxLength": MAX_URL},
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


@bp.get("/openapi.json")
def spec() -> Response:
    """This API's OpenAPI document."""
    return jsonify(SPEC)
