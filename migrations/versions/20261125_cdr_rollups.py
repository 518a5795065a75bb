"""cdr_rollups: running totals per day, account, prefix, disposition, currency for summaries

Revision ID: 5c1e2f7b9d40
Revises: a18986d6a04f
Create Date: 2026-11-25 09:21:00

Existing finished CDRs are summed into the new table here, so an upgraded database answers
summaries at once (the same SQL as switchd.billing.rebuild_rollups).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e2f7b9d40"
down_revision: str | None = "a18986d6a04f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONEY = sa.Numeric(20, 6).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cdr_rollups",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("rate_prefix", sa.String(length=32), nullable=False),
        sa.Column("disposition", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("answered", sa.BigInteger(), nullable=False),
        sa.Column("billable_ms", sa.BigInteger(), nullable=False),
        sa.Column("billed_seconds", sa.BigInteger(), nullable=False),
        sa.Column("cost", _MONEY, nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "account", "rate_prefix", "disposition", "currency", name=op.f("pk_cdr_rollups")
        ),
    )
    bind = op.get_bind()
    day = (
        "substr(setup_at, 1, 10)"
        if bind.dialect.name == "sqlite"
        else "to_char(timezone('UTC', setup_at), 'YYYY-MM-DD')"
    )
    op.execute(
        f"""
        INSERT INTO cdr_rollups (day, account, rate_prefix, disposition, currency, calls, answered,
                                 billable_ms, billed_seconds, cost)
        SELECT {day}, coalesce(account, ''), coalesce(rate_prefix, ''), disposition, coalesce(currency, ''),
               count(*), sum(CASE WHEN disposition = 'ANSWERED' THEN 1 ELSE 0 END),
               coalesce(sum(billable_ms), 0), coalesce(sum(billed_seconds), 0), coalesce(sum(cost), 0)
        FROM cdrs WHERE status <> 'open' AND disposition IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
        """
    )


def downgrade() -> None:
    op.drop_table("cdr_rollups")
