"""``SQLLoginFailures``: failed-login counts in auth's database (a table beside ``users``)."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from video2mp3.adapters.sql.engine import translated
from video2mp3.adapters.sql.users import metadata
from video2mp3.ports.login_failures import Failures

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("key", sa.String(320), primary_key=True),  # "account:<email>" or "address:<ip>"
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure_at", sa.DateTime, nullable=False, index=True),
)


class SQLLoginFailures:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get(self, keys: list[str]) -> dict[str, Failures]:
        table = login_failures.c
        with translated(), self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.key, table.failures, table.last_failure_at).where(
                    table.key.in_(keys)
                )
            ).all()
        return {key: Failures(count, last) for key, count, last in rows}

    def add(self, key: str, now: datetime, window: timedelta) -> None:
        table = login_failures.c
        restart = table.last_failure_at < now - window
        bump = (
            login_failures.update()
            .where(table.key == key)
            .values(failures=sa.case((restart, 1), else_=table.failures + 1), last_failure_at=now)
        )
        with translated():
            with self.engine.begin() as conn:
                conn.execute(login_failures.delete().where(restart & (table.key != key)))
                if conn.execute(bump).rowcount:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        login_failures.insert().values(key=key, failures=1, last_failure_at=now)
                    )
            except IntegrityError:  # another request inserted it meanwhile
                with self.engine.begin() as conn:
                    conn.execute(bump)

    def clear(self, key: str) -> None:
        with translated(), self.engine.begin() as conn:
            conn.execute(login_failures.delete().where(login_failures.c.key == key))
