"""delivery_events: indexes on (alert_id, type) and (alert_id, id)

``tracking.figures`` (the alert page, ``alert status``, the stats API) counts the
opened and clicked events of one alert; with the index on ``alert_id`` alone it read all of
the alert's events (three or more per delivery) on every view, hundreds of thousands of rows
during a large send.

``over_time.Charts`` reads the events of an alert after the last id it read: on PostgreSQL the
index on ``alert_id`` alone (its equal keys kept in the order of the rows' places, not of their
ids) read them all; (alert_id, id) replaces it (SQLite's already held the row id).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_delivery_events_alert_type", "delivery_events", ["alert_id", "type"])
    op.drop_index("ix_delivery_events_alert_id", table_name="delivery_events")
    op.create_index("ix_delivery_events_alert_id", "delivery_events", ["alert_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_events_alert_id", table_name="delivery_events")
    op.create_index("ix_delivery_events_alert_id", "delivery_events", ["alert_id"])
    op.drop_index("ix_delivery_events_alert_type", table_name="delivery_events")
