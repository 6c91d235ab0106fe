"""delivery_events.delivery_id: no foreign key to deliveries

Every event written (three or more per message: queued, sending, sent…) had PostgreSQL check
that its delivery exists, one trigger call per row taking a FOR KEY SHARE lock on the
delivery row, which the same transaction (the claim, the recorder) is updating. At a million
recipients the fan-out spent about a third of its time there (EXPLAIN ANALYZE: 35.5 s with
the key, 24.6 s without), and the claim and the recorder about 15 µs per message.

What the key guarded holds without it: events are only written for rows just inserted,
claimed or moved in the same transaction, and the one place that deletes deliveries
(``delivery.retention.prune_alert``) deletes their events first, in the same transaction
(tests/web/test_retention.py checks no event is left pointing at nothing). The key to
``alerts`` stays (ON DELETE CASCADE).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 18:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_events") as batch_op:
        batch_op.drop_constraint("fk_delivery_events_delivery_id_deliveries", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("delivery_events") as batch_op:
        batch_op.create_foreign_key(
            "fk_delivery_events_delivery_id_deliveries",
            "deliveries",
            ["delivery_id"],
            ["id"],
            ondelete="SET NULL",
        )
