"""HTTP helpers the gateway's views share: the caller's identity, job JSON and MP3 responses.

``principal()`` is the one way every view learns its caller: a bearer token (the API, curl, the
tutorial's client) or the page's session cookie, which on a state-changing request must come
with its CSRF token (``X-CSRF-Token``) and, when the browser says, from this origin.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from flask import Response, current_app, request, url_for
from werkzeug.wsgi import FileWrapper, get_input_stream

from video2mp3.domain.jobs import Job, iso, mp3_filename, utcnow
from video2mp3.domain.options import ConversionOptions
from video2mp3.errors import Forbidden, InvalidRequest, Unauthorized
from video2mp3.gateway.multipart import FILE_FIELD, MultipartForm
from video2mp3.gateway.service import Gateway
from video2mp3.gateway.tokens import Principal, TokenVerifier
from video2mp3.ports.blobs import CHUNK_SIZE, BlobReader
from video2mp3.ports.identity import Identity
from video2mp3.web import json_body

MULTIPART_OVERHEAD = 64 * 1024  # room for the part headers and the form fields
SESSION_COOKIE = "video2mp3_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEPT_MP3_MAX_AGE = timedelta(days=365)  # what browsers may cache an MP3 that never expires


def gateway() -> Gateway:
    service: Gateway = current_app.extensions["video2mp3.gateway"]
    return service


def identity() -> Identity:
    found: Identity = current_app.extensions["video2mp3.identity"]
    return found


def principal() -> Principal:
    """The caller, from ``Authorization: Bearer <jwt>`` or the session cookie (with its CSRF
    token unless the method is safe); ``Unauthorized`` or ``Forbidden`` otherwise."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    verifier: TokenVerifier = current_app.extensions["video2mp3.verifier"]
    if scheme.lower() == "bearer" and token.strip():
        return verifier.verify(token.strip())
    session = request.cookies.get(SESSION_COOKIE, "")
    if not session:
        raise Unauthorized("send a token from POST /login as 'Authorization: Bearer <token>'")
    found = verifier.verify(session)
    if request.method not in SAFE_METHODS:
        check_origin()
        if not gateway().links.ring.verify("csrf", session, request.headers.get(CSRF_HEADER, "")):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header", code="csrf")
    return found


def csrf_token(session: str) -> str:
    """The CSRF token that goes with a session: a MAC of it, so nothing is stored."""
    return gateway().links.ring.sign("csrf", session)


def check_origin() -> None:
    """``Forbidden`` when the browser says the request comes from another host. Hosts, not
    schemes, are compared: behind a proxy that ends TLS the page is https and this server http."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise Forbidden("cross-origin requests are refused", code="csrf")


def int_arg(name: str, default: int) -> int:
    """An integer query parameter; ``InvalidRequest`` naming it when it is not one."""
    value = request.args.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.lstrip("-").isdigit() or len(value) > 12:
        raise InvalidRequest(f"{name} must be an integer")
    return int(value)


def upload_from_request(owner: Principal) -> Job:
    """Run the upload use case on this request: options from the query string and the form
    fields before the file, the file streamed from the body. A JSON body instead names a file
    by its SHA-256, for the cache alone (``Gateway.from_cache``)."""
    service = gateway()
    if request.is_json:
        body = json_body()
        if not isinstance(body, dict):
            raise InvalidRequest('send {"sha256", "size", "filename", "options"} as JSON')
        wanted = ("sha256", "size", "filename", "options")
        return service.from_cache(owner, *(body.get(name) for name in wanted))
    service.check_size(request.content_length, MULTIPART_OVERHEAD)
    if request.mimetype != "multipart/form-data" or not request.mimetype_params.get("boundary"):
        raise InvalidRequest(
            f"send the video as multipart/form-data in a field named '{FILE_FIELD}'"
        )
    # The body as the server hands it over, bounded by its length (``service.upload`` bounds the
    # size): ``request.stream`` would wrap it once more and copy every byte twice.
    body = get_input_stream(request.environ, max_content_length=None)
    form = MultipartForm(body, request.mimetype_params["boundary"])
    fields = form.read_fields()
    if form.filename is None:
        raise InvalidRequest(f"the body holds no file: send it in a field named '{FILE_FIELD}'")
    options = ConversionOptions.parse({**request.args.to_dict(), **fields})
    return service.upload(
        owner,
        form.filename,
        form.file_chunks(),
        options,
        content_type=form.content_type,
        declared_size=max(0, (request.content_length or 0) - MULTIPART_OVERHEAD),
    )


def job_json(job: Job) -> dict[str, Any]:
    error = {"code": job.error_code, "message": job.error_message} if job.error_code else None
    token = gateway().download_token(job)
    return {
        "id": job.id,
        "status": str(job.status),
        "progress": round(job.progress, 3),
        "error": error,
        "filename": job.filename,
        "options": job.options.to_dict(),
        "bitrate_kbps": job.options.bitrate,
        "mp3_fid": job.mp3_fid,
        "mp3_size": job.mp3_size,
        "duration": job.duration,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "expires_at": iso(job.expires_at),
        "download_url": download_url(token) if token else None,
        "links": {
            "self": url_for("api.get_job", job_id=job.id),
            "mp3": url_for("api.get_mp3", job_id=job.id) if job.mp3_fid else None,
        },
    }


def download_url(token: str) -> str:
    """The link for a download token: under the configured public URL, as in the emails; without
    one, under the URL the request came to (its ``Host``, or the proxies' ``X-Forwarded-Host``
    and ``-Proto`` when ``VIDEO2MP3_PROXY_HOPS`` trusts them), which only its caller sees."""
    if base := current_app.config["PUBLIC_URL"]:
        return f"{base.rstrip('/')}/mp3/{token}"
    return url_for("page.download", token=token, _external=True)


def mp3_response(job: Job, mp3: BlobReader) -> Response:
    """Stream the MP3 with Content-Length, a strong ETag and Range. A blob never changes, so
    browsers may keep it, privately, until the job expires."""
    # werkzeug's own FileWrapper, not the server's: gunicorn's cannot seek, so a Range request
    # would read the MP3 from its first byte.
    response = Response(
        FileWrapper(mp3, CHUNK_SIZE),  # type: ignore[arg-type]
        mimetype="audio/mpeg",
        direct_passthrough=True,
    )
    response.content_length = mp3.info.size
    response.set_etag(mp3.info.id)
    response.last_modified = job.updated_at
    response.cache_control.private = True
    response.cache_control.immutable = True
    left = job.expires_at - utcnow() if job.expires_at else KEPT_MP3_MAX_AGE
    response.cache_control.max_age = max(0, int(left.total_seconds()))
    response.headers.set("Content-Disposition", "attachment", **_filename_params(job))
    response.make_conditional(request, accept_ranges=True, complete_length=mp3.info.size)
    return response


def _filename_params(job: Job) -> dict[str, str]:
    """``filename`` (ASCII fallback) and, when needed, RFC 5987 ``filename*``."""
    name = mp3_filename(job.filename)
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    params = {"filename": ascii_name.replace('"', "") or "audio.mp3"}
    if ascii_name != name:
        params["filename*"] = "UTF-8''" + quote(name, safe="!#$&+-.^_`|~")
    return params
