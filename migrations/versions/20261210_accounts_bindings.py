"""accounts and bindings: who may register and call, and where their phones are

Revision ID: 3b8e6f0c2a71
Revises: 09ce35274c2c
Create Date: 2026-12-10 09:00:00

Accounts hold HA1 digests for MD5 and SHA-256, never a password; bindings are the registrar's
contacts, one row per registered Contact of an account on a node.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3b8e6f0c2a71"
down_revision: str | None = "09ce35274c2c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("realm", sa.String(length=128), nullable=False),
        sa.Column("ha1_md5", sa.String(length=32), nullable=False),
        sa.Column("ha1_sha256", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("caller_id", sa.String(length=64), nullable=True),
        sa.Column("rate_plan", sa.String(length=64), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("username", "realm", name="uq_accounts_username_realm"),
    )
    op.create_table(
        "bindings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("realm", sa.String(length=128), nullable=False),
        sa.Column("contact", sa.String(length=1024), nullable=False),
        sa.Column("q", sa.Integer(), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("cseq", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("registered_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bindings")),
    )
    op.create_index("ix_bindings_node_username", "bindings", ["node", "username"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bindings_node_username", table_name="bindings")
    op.drop_table("bindings")
    op.drop_table("accounts")
