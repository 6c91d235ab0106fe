"""deliveries.alert_id: no foreign key to alerts

The fan-out writes one delivery per recipient, a million for a million, and PostgreSQL
checked each against ``alerts`` by a trigger per row: an SPI query and a FOR KEY SHARE lock on
the one alert row, a million times over. EXPLAIN ANALYZE of the fan-out at 200,000 recipients
put that trigger at about a tenth of the PostgreSQL backend's CPU (bench/RESULTS.md, stop 21);
without it, the backend's CPU for a million-recipient fan-out went from a median of 20.2 s to
18.1 s (bench/RESULTS.md, migration 0014).

What the key guarded holds without it, as for the events (0012, 0013):
- a delivery is written only by ``delivery.outbox.fan_out``, for an alert that
  ``delivery.publish`` has just read and found approved (an id that names no alert is refused
  before, by ``compose.drafts.get_alert``: not found); on PostgreSQL ``fan_out`` first locks
  the alert's row FOR NO KEY UPDATE until it commits, a stronger lock than the key's (a DELETE
  of the alert would wait for it), taken once instead of once a row;
- its ON DELETE CASCADE had nothing to do: the service never deletes an alert (no face, action
  or job does; ``delivery.retention.prune_alert`` deletes an alert's deliveries and events and
  keeps the alert), and no table refers to ``deliveries`` any more (0012).

Downgrading puts the key back, checking every row: a delivery whose alert is gone (none can be
written by the service) would fail it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_constraint("fk_deliveries_alert_id_alerts", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.create_foreign_key(
            "fk_deliveries_alert_id_alerts", "alerts", ["alert_id"], ["id"], ondelete="CASCADE"
        )
