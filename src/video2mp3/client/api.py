"""A small client of the gateway's public HTTP API (``/login``, ``/api/v1/jobs``...).

Every failure becomes a ``ClientError`` with the server's stable code and message, or one of the
client's own codes (``unreachable``, ``exists``, ``no_folder``, ``cancelled``), so that commands
print one clear line instead of a traceback; a 429 or a 503 carries how long the server asked to
wait (``retry.retry_after``), which ``retry.Admission`` honours. Uploads are streamed from the
file with a progress callback; downloads are written to a temporary file beside the target and
renamed into place, so no half-written MP3 is ever visible under its name.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import IO, Any

import httpx

from video2mp3.client.errors import Cancelled, ClientError
from video2mp3.client.retry import retry_after

Progress = Callable[[int, int], None]  # bytes done, bytes in all
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
CHUNK = 1024 * 1024
LATER = (429, 503)  # statuses that mean "try again after Retry-After"


class _CountedFile:
    """A file that reports how much of it has been read (httpx reads uploads in chunks)."""

    def __init__(self, file: IO[bytes], progress: Progress, stop: threading.Event) -> None:
        self.file, self.progress, self.stop = file, progress, stop
        self.total = os.fstat(file.fileno()).st_size

    def read(self, size: int = -1) -> bytes:
        if self.stop.is_set():
            raise Cancelled()
        # httpx asks for 64 KiB at a time; bigger reads cost fewer round trips through Python.
        chunk = self.file.read(CHUNK if size < 0 else max(size, CHUNK))
        self.progress(self.file.tell(), self.total)
        return chunk

    def fileno(self) -> int:  # lets httpx send a Content-Length
        return self.file.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()


class Api:
    """The gateway at ``server``, as the user whose ``token`` is given (if any)."""

    def __init__(self, server: str, token: str | None = None, *, timeout: Any = TIMEOUT) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)
        self.stop = threading.Event()  # set on Ctrl-C: transfers end at their next chunk

    def close(self) -> None:
        self.http.close()

    def login(self, email: str, password: str) -> str:
        """A token for ``email``; ``ClientError`` ``unauthorized`` on a wrong password."""
        with self._call("POST", "/login", auth=(email, password)) as response:
            response.read()
            return response.text.strip()

    def upload(self, path: Path, options: Mapping[str, str], progress: Progress) -> dict[str, Any]:
        """Upload the video at ``path`` with ``options`` (form fields): the queued job."""
        try:
            file = path.open("rb")
        except OSError as exc:
            raise ClientError("no_file", f"cannot read {path}: {exc.strerror}") from None
        with file:
            body = _CountedFile(file, progress, self.stop)
            files = {"file": (path.name, body, "application/octet-stream")}
            with self._call(
                "POST", "/api/v1/jobs", data=dict(options), files=files, timeout=None
            ) as response:
                return self._json(response)

    def job(self, job_id: str) -> dict[str, Any]:
        with self._call("GET", f"/api/v1/jobs/{job_id}") as response:
            return self._json(response)

    def jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._call("GET", "/api/v1/jobs", params={"limit": limit}) as response:
            items: list[dict[str, Any]] = self._json(response)["items"]
            return items

    def delete(self, job_id: str) -> None:
        with self._call("DELETE", f"/api/v1/jobs/{job_id}") as response:
            response.read()

    def download(
        self, job_id: str, directory: Path, *, force: bool, name: str | None = None
    ) -> Path:
        """Save the job's MP3 in ``directory`` (created with its parents if missing) under the
        server's file name (or ``name``).

        Never overwrites without ``force`` (``exists``); the file appears whole or not at all.
        ``no_folder`` when ``directory`` cannot be made.
        """
        with self._call("GET", f"/api/v1/jobs/{job_id}/mp3") as response:
            _make_folder(directory)
            target = directory / safe_name(name or disposition_name(response.headers))
            if target.exists() and not force:
                raise ClientError("exists", f"{target} exists (use --force to overwrite)")
            with _temporary(directory, target.name) as (temp, out):
                for chunk in response.iter_bytes(CHUNK):
                    if self.stop.is_set():
                        raise Cancelled()
                    out.write(chunk)
                out.close()
                _publish(temp, target, force=force)
        return target

    @contextmanager
    def _call(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self.http.stream(method, url, **kwargs) as response:
                if response.is_error:
                    response.read()
                    raise _error(response)
                yield response
        except httpx.ConnectError:
            raise ClientError(
                "unreachable",
                f"cannot reach {self.server}: is it running? (--server or VIDEO2MP3_SERVER)",
            ) from None
        except httpx.TimeoutException:
            raise ClientError("timeout", f"{self.server} did not answer in time") from None
        except httpx.TransportError as exc:
            raise ClientError("network_error", f"{self.server}: {exc}") from None

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        response.read()
        body: dict[str, Any] = response.json()
        return body


def _error(response: httpx.Response) -> ClientError:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{response.status_code}", response.reason_phrase
    if response.status_code == 401 and response.request.url.path != "/login":
        message = "your login has expired or is not valid: log in again with 'video2mp3 login'"
    wait = None
    if response.status_code in LATER:
        wait = retry_after(response.headers.get("Retry-After"))
    return ClientError(code, message, status=response.status_code, retry_after=wait)


def disposition_name(headers: httpx.Headers) -> str:
    """The file name a ``Content-Disposition`` header gives (``filename*`` first)."""
    message = Message()
    message["Content-Disposition"] = headers.get("Content-Disposition", "")
    return message.get_filename() or "audio.mp3"


def safe_name(name: str) -> str:
    """A name that stays inside the target directory and is not hidden."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1].lstrip(".").strip()
    return name or "audio.mp3"


def _make_folder(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or "not a folder"
        raise ClientError("no_folder", f"cannot make the folder {directory}: {reason}") from None


@contextmanager
def _temporary(directory: Path, name: str) -> Iterator[tuple[Path, IO[bytes]]]:
    """A temporary file beside the target (same file system, so the rename is atomic),
    removed unless it was published."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    temp = Path(temp_name)
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # what a plain open() would have made
        with os.fdopen(fd, "wb") as out:
            yield temp, out
    finally:
        temp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import, before any thread could create a file meanwhile


def _publish(temp: Path, target: Path, *, force: bool) -> None:
    """Give ``temp`` its final name: replace with ``force``, else fail if the name is taken
    (a hard link cannot overwrite, so there is no window between the check and the rename)."""
    if force:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)
    except FileExistsError:
        raise ClientError("exists", f"{target} exists (use --force to overwrite)") from None
    except OSError:  # file systems without hard links
        if target.exists():
            raise ClientError("exists", f"{target} exists (use --force to overwrite)") from None
        os.replace(temp, target)
