"""Alembic environment for the switchd billing schema.

Two ways in:
* from code (`switchd.billing.upgrade`): the caller hands an open connection in
  `config.attributes["connection"]` and owns its transaction;
* from the command line (`alembic upgrade head`, from any directory with `-c .../alembic.ini`): the
  URL is `-x url=…`, else `$SWITCHD_BILLING_URL`, else `[database] url` of the switchd
  configuration `-x config=FILE`, else of `switchd_config` in alembic.ini (config/switchd.toml
  next to it) — so `alembic` and `switchd run` find the same database whatever the working
  directory; the engine is made by `switchd.billing.open_engine`, so SQLite gets the same pragmas
  as the daemon. A missing SQLite file is created only by a command that migrates (upgrade,
  downgrade, stamp); `alembic current` on it fails naming it instead of creating an empty one.

`render_as_batch=True` lets ALTER-style changes run on SQLite (table copy and swap).
"""

from __future__ import annotations

import logging.config
import os
from pathlib import Path

from alembic import context
from alembic.util import CommandError
from sqlalchemy import Connection

from switchd.billing import Base, open_engine
from switchd.config import ConfigError, load

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and "connection" not in config.attributes:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    given = context.get_x_argument(as_dictionary=True)
    url = given.get("url") or os.environ.get("SWITCHD_BILLING_URL")
    if url:
        return url
    switchd_config = given.get("config") or config.get_main_option("switchd_config")
    if not switchd_config:
        raise CommandError("no database: pass -x url=…, -x config=FILE or set SWITCHD_BILLING_URL")
    try:
        return load(switchd_config).database.url
    except ConfigError as exc:
        raise CommandError(f"cannot find the database: {exc} (or pass -x url=…)") from exc


def _migrates() -> bool:
    """True for a command that moves the database to a revision (upgrade, downgrade, stamp)."""
    try:
        context.get_revision_argument()
    except KeyError:  # current, check …: they have no destination and only read
        return False
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the DDL instead of running it."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the connection handed in by switchd, or an engine of our own."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = _url()
    file = url.partition(":///")[2] if url.startswith("sqlite") else ""
    if file and file != ":memory:" and not Path(file).exists():
        if not _migrates():  # SQLite would create an empty file, in whatever directory this runs in
            raise CommandError(f"no billing database at {file}: `switchd db upgrade` or `switchd run` creates it")
        Path(file).parent.mkdir(parents=True, exist_ok=True)
    engine = open_engine(url)
    try:
        with engine.begin() as own:
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
