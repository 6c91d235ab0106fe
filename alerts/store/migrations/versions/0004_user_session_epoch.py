"""users.session_epoch: a counter signed into every session cookie of the user

Bumping it (on disabling the user, on a password change) ends every session the user has, in
every process, for good: enabling the user again does not bring an old session back.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"  # the newest revision on main when merged; re-point it if another lands first
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_epoch")
