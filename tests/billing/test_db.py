"""Migrations build the schema (no create_all), match the models, and SQLite is tuned as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from switchd.billing import (
    Base,
    MigrationError,
    alembic_config,
    current_revision,
    head_revision,
    open_engine,
    upgrade,
)

ROOT = Path(__file__).resolve().parents[2]


def test_upgrade_to_head_creates_the_billing_tables_and_indexes(engine: Engine) -> None:
    inspector = inspect(engine)
    assert {"cdrs", "rate_plans", "rates", "alembic_version"} <= set(inspector.get_table_names())
    indexes = {ix["name"] for ix in inspector.get_indexes("cdrs")}
    assert {
        "ix_cdrs_setup_at_id",
        "ix_cdrs_call_id",
        "ix_cdrs_caller",
        "ix_cdrs_callee",
        "ix_cdrs_account_setup_at",
        "ix_cdrs_disposition_setup_at",
        "ix_cdrs_node_status",
    } <= indexes
    assert current_revision(engine) == head_revision()


def test_the_migrations_and_the_models_describe_the_same_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_upgrade_is_idempotent_and_downgrade_to_base_removes_everything(engine: Engine) -> None:
    upgrade(engine)  # already at head: nothing to do, nothing fails
    assert current_revision(engine) == head_revision()
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}


def test_an_unreachable_database_is_a_migration_error_naming_it() -> None:
    engine = open_engine("sqlite:////nonexistent-dir/billing.db")
    with pytest.raises(MigrationError, match="nonexistent-dir"):
        upgrade(engine)


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL: a commit survives a power loss
    engine.dispose()


def test_alembic_upgrade_head_works_from_the_project_root(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "SWITCHD_BILLING_URL": url}
    alembic = Path(sys.executable).with_name("alembic")
    result = subprocess.run(
        [str(alembic), "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    engine = open_engine(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
