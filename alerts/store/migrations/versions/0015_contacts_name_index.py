"""contacts: an index on (name, id), the contacts list's order

The officers' contacts list and ``GET /api/v1/contacts`` read contacts ordered by name, then
id, 50 at a time. Without an index on that order each page sorted the whole network: at a
million contacts 110–140 ms for the first page (bench/pages.py, 2026-12-05); with it the
first page is read from the index.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 00:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_contacts_name_id", "contacts", ["name", "id"])


def downgrade() -> None:
    op.drop_index("ix_contacts_name_id", table_name="contacts")
