"""audit_log.prev_hash and audit_log.hash: the audit log's hash chain

Each entry carries the hash of the one before it and its own (``alerts.store.audit``).
Existing entries are chained here, in id order, with the same ``entry_hash`` that ``record``
and ``verify_chain`` use, so ``alerts audit verify`` holds from the first entry on.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from alerts.store.audit import GENESIS, entry_hash
from alerts.store.models import NullableJSON, UTCDateTime

revision = "0005"
down_revision = "0004"  # the newest revision on main when merged; re-point it if another lands first
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    log = sa.table(
        "audit_log",
        sa.column("id", sa.BigInteger()),
        sa.column("at", UTCDateTime()),
        sa.column("user_id", sa.BigInteger()),
        sa.column("action", sa.String()),
        sa.column("object_type", sa.String()),
        sa.column("object_id", sa.String()),
        sa.column("details", NullableJSON),
        sa.column("prev_hash", sa.String()),
        sa.column("hash", sa.String()),
    )
    bind = op.get_bind()
    prev_hash, after = GENESIS, -1
    while True:
        rows = bind.execute(
            sa.select(
                log.c.id,
                log.c.at,
                log.c.user_id,
                log.c.action,
                log.c.object_type,
                log.c.object_id,
                log.c.details,
            )
            .where(log.c.id > after)
            .order_by(log.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            own = entry_hash(
                prev_hash=prev_hash,
                at=row.at,
                user_id=row.user_id,
                action=row.action,
                object_type=row.object_type,
                object_id=row.object_id,
                details=row.details,
            )
            bind.execute(log.update().where(log.c.id == row.id).values(prev_hash=prev_hash, hash=own))
            prev_hash, after = own, row.id
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
