"""subscribe_attempts: the public subscribe form's limits, shared by every process

Requests per client network and confirmation mails per service, network and recipient domain
were counted in one process's memory: several ``serve`` processes each allowed the whole
budget, and a restart forgot it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscribe_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribe_attempts")),
    )
    op.create_index(op.f("ix_subscribe_attempts_key"), "subscribe_attempts", ["key"])
    op.create_index(op.f("ix_subscribe_attempts_at"), "subscribe_attempts", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_subscribe_attempts_at"), table_name="subscribe_attempts")
    op.drop_index(op.f("ix_subscribe_attempts_key"), table_name="subscribe_attempts")
    op.drop_table("subscribe_attempts")
