"""cdrs.reinvites, cdrs.hold_ms: the re-INVITEs/UPDATEs relayed in a call and its time on hold

Revision ID: 09ce35274c2c
Revises: 7d3a9c41e2b8
Create Date: 2026-12-10 10:00:00

Both nullable: a CDR written before this revision, or closed by recovery, does not know them.
Billing does not read them (hold time is billed like any other answered time).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "09ce35274c2c"
down_revision: str | None = "7d3a9c41e2b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cdrs") as batch:
        batch.add_column(sa.Column("reinvites", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("hold_ms", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cdrs") as batch:
        batch.drop_column("hold_ms")
        batch.drop_column("reinvites")
