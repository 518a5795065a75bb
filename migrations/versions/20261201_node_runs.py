"""node_runs: one row per run of a node, with its heartbeat (the bound of CDR recovery)

Revision ID: 7d3a9c41e2b8
Revises: 5c1e2f7b9d40
Create Date: 2026-12-01 10:00:00

The store writes `last_beat` every `billing.heartbeat_interval` seconds; a CDR a crashed run left
open is recovered as ending at that run's last beat instead of at its own last write.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d3a9c41e2b8"
down_revision: str | None = "5c1e2f7b9d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "node_runs",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("run_started", _TIME, nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("last_beat", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("node", "run_started", name=op.f("pk_node_runs")),
    )


def downgrade() -> None:
    op.drop_table("node_runs")
