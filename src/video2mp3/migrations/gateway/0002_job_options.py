"""Jobs carry every conversion option as JSON; the bitrate column folds into it.

Revision ID: gateway_0002
Revises: gateway_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0002"
down_revision = "gateway_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("options", sa.Text, nullable=False, server_default="{}"))
    op.execute(
        "UPDATE jobs SET options = '{\"bitrate\": ' || bitrate_kbps || '}'"
        " WHERE bitrate_kbps IS NOT NULL"
        if op.get_bind().dialect.name == "sqlite"
        else "UPDATE jobs SET options = CONCAT('{\"bitrate\": ', bitrate_kbps, '}')"
        " WHERE bitrate_kbps IS NOT NULL"
    )
    with op.batch_alter_table("jobs") as batch:
        batch.alter_column("options", server_default=None, existing_type=sa.Text)
        batch.drop_column("bitrate_kbps")


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("bitrate_kbps", sa.Integer))
        batch.drop_column("options")
