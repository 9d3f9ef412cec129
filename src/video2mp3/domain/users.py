"""A user account as auth knows it: an id, an email and the hash of a password."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class User:
    id: int
    email: str
    password_hash: str
