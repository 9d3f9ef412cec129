"""``SQLUserRepository``: the users table in auth's own database."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from video2mp3.adapters.sql.engine import ping, translated
from video2mp3.domain.users import User
from video2mp3.errors import Conflict

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)


class SQLUserRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, email: str, password_hash: str) -> User:
        """Insert a user; raise ``Conflict`` if the email is taken."""
        row = {"email": email, "password_hash": password_hash}
        try:
            with translated(), self.engine.begin() as conn:
                created = datetime.now(UTC).replace(tzinfo=None)
                result = conn.execute(users.insert().values(**row, created_at=created))
        except IntegrityError:
            raise Conflict("an account with this email already exists") from None
        key = result.inserted_primary_key
        assert key is not None  # always set by a single-row INSERT
        return User(id=int(key[0]), **row)

    def by_email(self, email: str) -> User | None:
        with translated(), self.engine.connect() as conn:
            found = conn.execute(
                sa.select(users.c.id, users.c.email, users.c.password_hash).where(
                    users.c.email == email
                )
            ).first()
        return User(*found) if found else None

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        with translated(), self.engine.begin() as conn:
            conn.execute(
                users.update().where(users.c.id == user_id).values(password_hash=password_hash)
            )

    def ping(self) -> None:
        ping(self.engine)
