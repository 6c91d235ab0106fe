"""delivery_events: the (alert_id, type) index holds only opens and clicks; no key to alerts

The fan-out writes one ``queued`` event per delivery, a million for a million recipients, and
the send two or more per message. Each was written into ``ix_delivery_events_alert_type``,
which only the counts of opened and clicked events read (``tracking.figures``, and
``retention.prune_alert`` before it deletes): the index now holds those events alone (a
partial index; the queries name the two types as constants, which both databases need to
match a partial index), so the other events are not written into it.

Each event also had PostgreSQL check, by a trigger per row, that its alert exists (a FOR KEY
SHARE lock on the alert's row). At a million recipients, EXPLAIN ANALYZE of the fan-out showed
that key and the (alert_id, type) index together at about a fifth of the PostgreSQL
backend's CPU. What the key guarded holds without it, as for ``delivery_id`` (0012): an event
is written only for a delivery row just inserted, claimed or moved, with that delivery's
``alert_id``, and deliveries keep their key to ``alerts``; the service never deletes an alert,
and the one place that deletes events (``retention.prune_alert``) deletes them by alert id.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# as ``alerts.store.models.ENGAGEMENT_TYPES`` renders it (SQLite matches a partial index's
# condition only when the query writes it the same way)
ENGAGED = sa.text("type IN ('opened', 'clicked')")


def upgrade() -> None:
    with op.batch_alter_table("delivery_events") as batch_op:
        batch_op.drop_constraint("fk_delivery_events_alert_id_alerts", type_="foreignkey")
    op.drop_index("ix_delivery_events_alert_type", table_name="delivery_events")
    op.create_index(
        "ix_delivery_events_alert_type",
        "delivery_events",
        ["alert_id", "type"],
        postgresql_where=ENGAGED,
        sqlite_where=ENGAGED,
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_events_alert_type", table_name="delivery_events")
    op.create_index("ix_delivery_events_alert_type", "delivery_events", ["alert_id", "type"])
    with op.batch_alter_table("delivery_events") as batch_op:
        batch_op.create_foreign_key(
            "fk_delivery_events_alert_id_alerts", "alerts", ["alert_id"], ["id"], ondelete="CASCADE"
        )
