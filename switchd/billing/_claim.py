"""The node claim: one process at a time may run a node name against a billing database.

A second `switchd run` with the same node would recover the live node's open CDRs (closing calls
that are still up) and then race it for every write. So a node takes an exclusive claim on its
name before anything else touches the database (before migrating and before recovery) and holds
it for its whole life; `claim_node` raises `NodeClaimed`, one line naming the holder, if another
process has it.

* SQLite: an flock'd lock file next to the database file, `<database>.<node>.lock`, holding the
  holder's host, pid and start time. The kernel drops an flock when its process dies, however it
  dies, so a stale file left by a killed node blocks nobody; the file is never removed (removing
  it would let two processes lock two different files of the same name).
* PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`, a 64-bit key from the node
  name) on a connection of its own, in autocommit, whose application_name names node, host and
  pid, so the holder is found in pg_locks joined with pg_stat_activity. The lock lives as long as
  that session. If the connection drops (server restart, network, an administrator's
  pg_terminate_backend), `check()` reconnects and takes the lock again; if another process took it
  meanwhile, `check()` raises NodeClaimed naming it, and the node must stop. While the server
  cannot be reached the claim cannot be verified; the node goes on (spooling its CDRs) and checks
  again. `keep()` runs `check()` every few seconds for the daemon.
* An in-memory SQLite database belongs to its process: the claim is held in a process-wide set.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trio
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ._db import PG_CONNECT_TIMEOUT_S
from ._errors import NodeClaimed, StoreUnavailable

log = logging.getLogger(__name__)

_MEMORY_CLAIMS: set[str] = set()
_MEMORY_LOCK = threading.Lock()
_APP_NAME = re.compile(r"switchd node=(?P<node>\S*) host=(?P<host>\S*) pid=(?P<pid>\d+)")


def claim_node(url: str, node: str) -> NodeClaim:
    """Claim `node` on the billing database `url` for this process; release() (or `with`) ends it.

    Raises NodeClaimed if another process holds it, StoreUnavailable if a PostgreSQL server cannot
    be reached to take the claim (nor could the node then migrate or recover).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            return _MemoryClaim(node)
        return _FileClaim(Path(database).resolve().with_name(f"{Path(database).name}.{node}.lock"), node)
    if parsed.get_backend_name() == "postgresql":
        return _PgClaim(url, node)
    raise ValueError(f"cannot claim node {node!r} on {parsed.get_backend_name()}: SQLite or PostgreSQL only")


class NodeClaim:
    """A held claim on a node name (see the module docstring)."""

    node: str

    def check(self) -> None:
        """Verify the claim is still ours (re-taking it after a dropped connection); blocking.

        Raises NodeClaimed when another process holds it now.
        """

    def release(self) -> None:
        """Give the claim up; idempotent."""

    async def keep(self, interval: float = 5.0) -> None:
        """Run `check()` every `interval` seconds, in a thread, until cancelled; raises NodeClaimed."""
        while True:
            await trio.sleep(interval)
            await trio.to_thread.run_sync(self.check, abandon_on_cancel=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _me() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _claimed(node: str, holder: str) -> NodeClaimed:
    return NodeClaimed(f"node {node!r} is already running: {holder}")


class _MemoryClaim(NodeClaim):
    def __init__(self, node: str) -> None:
        self.node = node
        with _MEMORY_LOCK:
            if node in _MEMORY_CLAIMS:
                raise _claimed(node, f"pid {os.getpid()} (this process, in-memory database)")
            _MEMORY_CLAIMS.add(node)
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            with _MEMORY_LOCK:
                _MEMORY_CLAIMS.discard(self.node)


class _FileClaim(NodeClaim):
    def __init__(self, path: Path, node: str) -> None:
        self.node = node
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise _claimed(node, f"{holder} (lock file {path})") from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps({"node": node, **_me()}) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock


def _describe(raw: bytes) -> str:
    try:
        info = json.loads(raw)
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "a process that left no details"


def _advisory_key(node: str) -> int:
    """A signed 64-bit key for pg_advisory_lock, from the node name."""
    return int.from_bytes(hashlib.sha256(f"switchd-node:{node}".encode()).digest()[:8], "big", signed=True)


class _PgClaim(NodeClaim):
    def __init__(self, url: str, node: str) -> None:
        self.node = node
        self._key = _advisory_key(node)
        me = _me()
        self._engine: Engine = create_engine(
            url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={
                "connect_timeout": PG_CONNECT_TIMEOUT_S,
                "application_name": f"switchd node={node} host={me['host']} pid={me['pid']}"[:63],
            },
        )
        self._conn: Connection | None = None
        try:
            self._take()
        except BaseException:
            self._engine.dispose()
            raise

    def _take(self) -> None:
        """Connect and take the lock, or raise NodeClaimed naming its holder."""
        try:
            conn = self._engine.connect()
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot claim node {self.node!r}: {exc}") from exc
        try:
            taken = conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key})
            if not taken:
                holder = self._holder(conn)
                raise _claimed(self.node, f"{holder} (PostgreSQL advisory lock {self._key})")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _holder(self, conn: Connection) -> str:
        row = conn.execute(
            text(
                "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid = CAST(:high AS oid) AND l.objid = CAST(:low AS oid) "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"high": (self._key >> 32) & 0xFFFFFFFF, "low": self._key & 0xFFFFFFFF},
        ).first()
        if row is None:
            return "another session (it left meanwhile; try again)"
        backend, application, started = row
        since = started.astimezone(UTC).isoformat(timespec="seconds") if started else "?"
        found = _APP_NAME.match(application or "")
        if found is None:
            return f"PostgreSQL backend {backend} ({application or 'no application_name'}) since {since}"
        return f"pid {found['pid']} on {found['host']} since {since}"

    def check(self) -> None:
        conn = self._conn
        if conn is not None:
            try:
                conn.scalar(text("SELECT 1"))
                return
            except SQLAlchemyError:
                log.warning("the claim on node %s lost its database connection; taking it again", self.node)
                self._conn = None
                conn.invalidate()
                conn.close()
        try:
            self._take()
        except StoreUnavailable as exc:
            log.warning("cannot verify the claim on node %s: %s", self.node, exc)
            return
        except NodeClaimed as exc:
            raise NodeClaimed(
                f"lost the claim on node {self.node!r} while its connection was down; {exc}"
            ) from None
        log.warning("claim on node %s taken again", self.node)

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()  # the session ends, and with it the advisory lock
            except SQLAlchemyError as exc:
                log.warning("closing the claim connection of node %s: %s", self.node, exc)
        self._engine.dispose()
