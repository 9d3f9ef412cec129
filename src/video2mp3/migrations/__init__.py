"""Schema migrations (Alembic) for the services' databases: auth's users, the gateway's jobs and
the notifier's webhook deliveries.

One environment (``env.py``) serves them all; each service's revisions live in its own folder and
its database records its own version. ``upgrade(engine, service)`` brings a database to the
newest schema; services run it once at start-up, before their workers fork.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from video2mp3.adapters.sql.engine import translated

HERE = Path(__file__).parent

Service = Literal["auth", "gateway", "notifier"]


def config(service: Service, connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_locations", str(HERE / service))
    cfg.attributes["connection"] = connection
    cfg.attributes["service"] = service
    return cfg


def upgrade(engine: sa.Engine, service: Service) -> None:
    """Migrate ``service``'s database to the newest revision; a no-op when it is there."""
    with translated(), _migration_lock(engine, service), engine.begin() as connection:
        command.upgrade(config(service, connection), "heads")


# Seconds a starting replica waits for another's migration; Kubernetes' startupProbe outlasts it.
LOCK_WAIT = 300


@contextmanager
def _migration_lock(engine: sa.Engine, service: Service) -> Iterator[None]:
    """On MySQL, replicas starting together migrate one after the other.

    The lock lives on a connection of its own, held until the migration has committed.
    """
    if engine.dialect.name != "mysql":
        yield
        return
    name = {"lock": f"video2mp3_migrate_{service}"}
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT GET_LOCK(:lock, :wait)"), {**name, "wait": LOCK_WAIT})
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT RELEASE_LOCK(:lock)"), name)
