"""The web page at ``GET /``, its signed download links (``/mp3/<token>``) and the security
headers of every gateway response.

The page is one server-rendered template plus plain JavaScript modules and CSS under
``static/``: no build step. Its options form is generated from ``describe()``, the same
description the API and the CLI are built from, so a new option appears without touching the
page. A strict Content-Security-Policy holds (no inline script or style anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from video2mp3.domain.options import describe
from video2mp3.gateway.http import gateway, mp3_response

bp = Blueprint("page", __name__)

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)


@dataclass(frozen=True)
class Field:
    """One control of the options form."""

    name: str
    label: str
    help: str
    kind: str  # select | checkbox | number | text
    choices: list[str] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    default: Any = None


def option_fields(schema: dict[str, Any]) -> list[Field]:
    """The form's controls from the options' JSON Schema (``describe()``)."""
    fields = []
    for name, prop in schema["properties"].items():
        # Optional fields are ``anyOf: [<the type>, {"type": "null"}]``.
        kind = next((s for s in prop.get("anyOf", [prop]) if s.get("type") != "null"), prop)
        attrs: dict[str, str] = {}
        for key, attr in (("minimum", "min"), ("maximum", "max"), ("maxLength", "maxlength")):
            if key in kind:
                attrs[attr] = str(kind[key])
        if "pattern" in kind:
            attrs["pattern"] = kind["pattern"].removeprefix("^").removesuffix("$")
        label = prop.get("title") or name.replace("_", " ").capitalize()
        common = {"name": name, "label": label, "help": prop.get("description", "")}
        if "enum" in kind:
            choices = [str(c) for c in kind["enum"]]
            fields.append(Field(**common, kind="select", choices=choices))
        elif kind.get("type") == "boolean":
            fields.append(Field(**common, kind="checkbox", default=prop.get("default")))
        elif kind.get("type") == "integer":
            fields.append(Field(**common, kind="number", attrs=attrs))
        else:  # numbers too: times may be written 01:30
            attrs.pop("min", None), attrs.pop("max", None)
            fields.append(Field(**common, kind="text", attrs=attrs))
    return fields


API_INDEX = {
    "service": "video2mp3",
    "openapi": "/openapi.json",
    "sign_up": "POST /api/v1/users",
    "login": "POST /login (HTTP Basic)",
    "upload": "POST /api/v1/jobs (multipart field 'file')",
    "jobs": "GET /api/v1/jobs",
}


@bp.get("/")
def index() -> Response | str:
    """The page for browsers; where to start, as JSON, for API clients that ask for JSON."""
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) == (
        "application/json"
    ):
        return jsonify(API_INDEX)
    return render_template(
        "index.html",
        options=option_fields(describe()),
        signup_enabled=current_app.config["SIGNUP_ENABLED"],
        max_active_jobs=gateway().max_active_jobs,
    )


@bp.get("/mp3/<token>")
def download(token: str) -> Response:
    """The MP3 a signed link opens: no header needed, Range works."""
    response = mp3_response(*gateway().open_link(token))
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.after_app_request
def security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Signed links are bearer credentials in a URL: never hand them to another site.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response
