"""Alembic environment for the switchd billing schema.

Two ways in:
* from code (`switchd.billing.upgrade`): the caller hands an open connection in
  `config.attributes["connection"]` and owns its transaction;
* from the command line (`alembic upgrade head` at the project root): the URL is `-x url=…`, else
  `$SWITCHD_BILLING_URL`, else `sqlalchemy.url` of alembic.ini; the engine is made by
  `switchd.billing.open_engine`, so SQLite gets the same pragmas as the daemon.

`render_as_batch=True` lets ALTER-style changes run on SQLite (table copy and swap).
"""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy import Connection

from switchd.billing import Base, open_engine

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and "connection" not in config.attributes:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("SWITCHD_BILLING_URL")
    if url:
        return url
    configured = config.get_main_option("sqlalchemy.url")
    if not configured:
        raise RuntimeError("no database URL: pass -x url=…, set SWITCHD_BILLING_URL or sqlalchemy.url")
    return configured


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
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(os.path.abspath(url.removeprefix("sqlite:///"))), exist_ok=True)
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
