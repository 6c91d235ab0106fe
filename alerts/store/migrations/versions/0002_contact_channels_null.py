"""contacts: JSON null in channels and topics becomes SQL NULL

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 03:00:00

Contacts created by the "Add a contact" form or ``POST /api/v1/contacts`` without a channel
preference had ``channels`` (and ``topics``) stored as the JSON text ``null``; fan-out tests
``IS NULL`` for "no preference", so those contacts received nothing (issue 10). The columns
now write SQL NULL (``JSON(none_as_null=True)``); this repairs the rows already written.

Only the contact columns are repaired: nothing selects on the other nullable JSON columns
(``delivery_events.payload``, ``followups.data``, ``audit_log.details``), which read back as
None either way, and rewriting the append-only audit log or the events table would be wrong
or slow for no gain.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CAST(... AS VARCHAR) is the stored text on SQLite and the json's text on PostgreSQL.
    for column in ("channels", "topics"):
        op.execute(
            f"UPDATE contacts SET {column} = NULL "  # a fixed column name
            f"WHERE {column} IS NOT NULL AND CAST({column} AS VARCHAR) = 'null'"
        )


def downgrade() -> None:
    # SQL NULL and JSON null mean the same to every reader: nothing to undo.
    pass
