"""delivery_events (alert_id, type): an alert's opens and clicks without reading its every event

``tracking.figures`` (the alert page, ``alert status``, the stats API) counts the
opened and clicked events of one alert; with the index on ``alert_id`` alone it read all of
the alert's events (three or more per delivery) on every view, hundreds of thousands of rows
during a large send.

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


def downgrade() -> None:
    op.drop_index("ix_delivery_events_alert_type", table_name="delivery_events")
