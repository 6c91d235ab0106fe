"""pruned_counts: what ``alerts prune`` keeps of an alert whose deliveries and events it deleted

Per alert and channel, how many deliveries ended in each state and how many were opened or
clicked, so that the alert's page, ``alert status`` and the API show the same counts after the
outbox rows and delivery events of a long-finished alert are gone.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pruned_counts",
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name=op.f("fk_pruned_counts_alert_id_alerts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("alert_id", "channel", "name", name=op.f("pk_pruned_counts")),
    )


def downgrade() -> None:
    op.drop_table("pruned_counts")
