"""Alembic environment: runs online on the connection ``migrations.upgrade`` hands over."""

from __future__ import annotations

from alembic import context

from video2mp3.adapters.sql.deliveries import metadata as notifier_metadata
from video2mp3.adapters.sql.jobs import metadata as gateway_metadata
from video2mp3.adapters.sql.users import metadata as auth_metadata

METADATA = {"auth": auth_metadata, "gateway": gateway_metadata, "notifier": notifier_metadata}

config = context.config
service = config.attributes["service"]
context.configure(
    connection=config.attributes["connection"],
    target_metadata=METADATA[service],
    version_table=f"alembic_version_{service}",  # both services may share one database
    render_as_batch=True,  # SQLite can only alter tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
