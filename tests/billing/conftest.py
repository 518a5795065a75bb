"""Billing fixtures: every test that takes `engine` runs once on SQLite and once on PostgreSQL.

The PostgreSQL 15 cluster is our own child process, started once per session in a temp dir
(initdb + pg_ctl on a free port, as the `postgres` user when we are root) and stopped at the end
by `pg_ctl stop -m fast`, then by PID if it lingers. Each test gets a fresh database in it. Locally
the PostgreSQL half skips with the reason when the binaries are missing; under CI=true it fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from switchd.billing import BillingStore, BillingStoreConfig, open_engine, upgrade
from switchd.otp import stop
from tests.conftest import require_binary

from .factories import store_config

PG_BIN = "/usr/lib/postgresql/15/bin"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PgCluster:
    """A running throw-away PostgreSQL cluster of this test session."""

    bin_dir: Path
    base: Path
    port: int
    as_postgres: list[str]

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-l", str(self.base / "postgres.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        pid = self.pid()
        try:
            self._pg_ctl("-w", "-m", "fast", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if pid is not None:  # our own postmaster, by PID: never anything else
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL 15 cluster on 127.0.0.1:<free port>, for the whole session."""
    initdb = require_binary("initdb", PG_BIN)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="switchd-pg-"))
    if as_postgres:
        shutil.chown(base, "postgres", "postgres")
    cluster = PgCluster(initdb.parent, base, _free_port(), as_postgres)
    try:
        subprocess.run(
            [
                *as_postgres,
                str(initdb),
                "-D",
                str(cluster.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _fresh_database(cluster: PgCluster) -> Iterator[str]:
    name = f"billing_{uuid.uuid4().hex[:12]}"
    # pre-ping: a test may restart the cluster under this engine's pooled connection
    admin = create_engine(cluster.url(), isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield cluster.url(name)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.db'}"
        return
    with _fresh_database(request.getfixturevalue("pg_cluster")) as url:
        yield url


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """The URL of an empty PostgreSQL database (for tests that need the server itself)."""
    with _fresh_database(pg_cluster) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head (by the migrations: no create_all)."""
    eng = open_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


class Hang:
    """Holds every CDR write of every engine while `armed`, until `release` (a database that hangs).

    A held write goes on when released, or fails if `fail` is set by then (as a write the store
    gave up on and abandoned should, so it cannot land after the test's checks).
    """

    def __init__(self) -> None:
        self.armed = False
        self.fail = False
        self.held = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.armed and statement.startswith(("INSERT INTO cdrs", "UPDATE cdrs")):
            self.held += 1
            self.entered.set()
            self.release.wait(60)
            if self.fail:
                raise OperationalError(statement, None, Exception("injected: the hung write failed"))


@pytest.fixture
def hang() -> Iterator[Hang]:
    """A Hang on every engine, disarmed and released at the end (abandoned threads then end)."""
    hang = Hang()
    event.listen(Engine, "before_cursor_execute", hang)
    yield hang
    hang.armed = False
    hang.release.set()
    event.remove(Engine, "before_cursor_execute", hang)


@pytest.fixture
async def store(db_url: str, tmp_path: Path) -> AsyncIterator[BillingStoreConfig]:
    """A BillingStore registered as "billing" on a fresh database, stopped cleanly afterwards."""
    config = store_config(db_url, tmp_path)
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        yield config
        await stop(pid)
