"""SQL engines for the services' own databases: MySQL (PyMySQL) in production, SQLite embedded.

Both run the same SQLAlchemy code; this module holds the few differences between the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from video2mp3.errors import Unavailable


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` that survives idle disconnects (MySQL) and threads (SQLite)."""
    if url.startswith("sqlite"):
        database = sa.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite ignores SELECT ... FOR UPDATE; taking the write lock when a transaction begins
        # gives read-modify-write the same isolation the row locks give on MySQL.
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_recycle=1800)


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]  # we emit BEGIN
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def translated() -> Iterator[None]:
    """Turn a lost database into ``Unavailable``."""
    try:
        yield
    except OperationalError as exc:
        raise Unavailable(f"database: {exc.orig!r}") from exc


def ping(engine: sa.Engine) -> None:
    """Raise ``Unavailable`` unless the database answers."""
    with translated(), engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
