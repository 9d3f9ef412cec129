"""Where the client keeps its server and token: ``$XDG_CONFIG_HOME/video2mp3/config.json``.

The token is a credential, so the file is created with mode 0600 (never world-readable, not even
for an instant) and replaced atomically. ``--server`` and ``VIDEO2MP3_SERVER`` override the
stored server; the default is the address of ``make run``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SERVER = "http://127.0.0.1:8080"


def config_file(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "video2mp3" / "config.json"


@dataclass(frozen=True)
class Config:
    server: str = DEFAULT_SERVER
    token: str | None = None


def load(path: Path) -> Config:
    """The stored configuration; the defaults when there is none or it cannot be read."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return Config()
    if not isinstance(stored, dict):
        return Config()
    token = stored.get("token")
    return Config(
        server=str(stored.get("server") or DEFAULT_SERVER),
        token=token if isinstance(token, str) else None,
    )


def save(path: Path, config: Config) -> None:
    """Store ``config`` readable by its owner only, replacing the old file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump({"server": config.server, "token": config.token}, out)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def server_of(config: Config, flag: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """The server to talk to: the flag, else ``VIDEO2MP3_SERVER``, else the stored one."""
    return (flag or environ.get("VIDEO2MP3_SERVER") or config.server).rstrip("/")
