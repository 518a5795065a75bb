"""Opening the billing database and migrating it to the head revision, from code.

`open_engine(url)` makes the SQLAlchemy engine with the settings billing relies on; on SQLite
every new connection gets (connect event, so pooled reconnects get them too):

* `journal_mode=WAL`     readers never block the writer and the writer never blocks readers
* `synchronous=FULL`     every commit fsyncs the WAL, so a committed CDR step survives a power loss
                         as a spooled one does (NORMAL would only survive a crash of the process:
                         a BYE answered after its close was "durable" could lose its CDR with the
                         machine). Group commit pays one fsync per batch, not per step.
* `foreign_keys=ON`      SQLite leaves them off by default
* `busy_timeout=5000`    a second writer (the CLI, `alembic`) waits up to 5 s instead of failing

`upgrade(engine)` is what `switchd run` does on start and what `alembic upgrade head` does from the
project root: the same migrations, with a Config built here and the connection handed to
`migrations/env.py` in `config.attributes["connection"]`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from ._errors import MigrationError

log = logging.getLogger(__name__)

# migrations/ lives at the project root, next to alembic.ini (see docs/billing.md).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 3


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def open_engine(url: str, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine for `url` (sqlite:///path or postgresql+psycopg://…), tuned as above.

    `kwargs` go to `sqlalchemy.create_engine`. `pool_pre_ping` is on, so a connection broken by a
    database restart is replaced instead of failing the next write; PostgreSQL connections give
    up after PG_CONNECT_TIMEOUT_S seconds.
    """
    kwargs.setdefault("pool_pre_ping", True)
    if url.startswith("postgresql"):
        # an unreachable server must fail fast (and send CDRs to the spool), not after TCP's minutes
        kwargs.setdefault("connect_args", {"connect_timeout": PG_CONNECT_TIMEOUT_S})
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(script_location: Path = MIGRATIONS_DIR) -> Config:
    """An Alembic Config built in code (no alembic.ini needed) for the billing migrations."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    return config


def upgrade(engine: Engine, revision: str = "head", *, script_location: Path = MIGRATIONS_DIR) -> None:
    """Migrate the database behind `engine` to `revision` (default: the newest), in one transaction.

    Raises MigrationError naming the database when Alembic or the database fails.
    """
    config = alembic_config(script_location)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise MigrationError(
            f"cannot migrate {engine.url.render_as_string(hide_password=True)} to {revision}: {exc}"
        ) from exc
    log.info("billing schema at %s", revision, extra={"db": engine.url.render_as_string(hide_password=True)})


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at; None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(script_location: Path = MIGRATIONS_DIR) -> str:
    """The newest revision among the migrations."""
    head = ScriptDirectory.from_config(alembic_config(script_location)).get_current_head()
    if head is None:
        raise MigrationError(f"no migrations in {script_location}")
    return head
