"""responses.sender: who answered, when they are not a contact

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01 10:00:00

``alerts alert respond --from minister@example.org`` records an answer from anyone; the
sender is kept as written when no contact matches (a matching contact is linked instead).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sender", sa.String(length=320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.drop_column("sender")
