"""The node's accepted connections: limits, which of them carry calls, and which to shed first.

A connection costs a file descriptor and ~22 KiB whether or not anything uses it, and file
descriptors run out: with ``ulimit -n 1024``, 1,100 idle connections once left a real INVITE
unanswered. So the node keeps count, and tells connections that carry calls from idle ones:

* **Which connections carry calls** — a call session calls `attach_call(conn)` once, when it
  starts: one `CarriesCall` message to its caller's connection, which monitors the session (an
  Erlang link, one way) and counts it until its ``Down``. A connection with no session attached
  is *idle*: it is closed after ``ConnectionSettings.idle_timeout`` seconds without a message,
  and it is the kind that is shed. A connection with a call is never shed nor timed out: the
  call's BYE will come on it. Connections we opened to gateways are not in this table at all.
* **Limits** (`admit`, at each accept): at most ``max_connections_per_ip`` from one source
  address — beyond it the new connection is closed at once; and at most ``max_connections`` in
  all — beyond it the idle connection that has been quiet longest is shed to make room, and only
  when every connection carries a call is the new one closed at once. Shedding rather than
  refusing at the global limit is what keeps a flood of idle connections from locking real
  callers out; the per-address limit keeps one flooding address from churning everyone else's.
* **Shedding** (`shed_idle`) is also what the listener does when ``accept`` fails for want of
  file descriptors (EMFILE/ENFILE).

``max_connections = 0`` (the default) means: the soft RLIMIT_NOFILE of the process less
`FD_RESERVE` descriptors kept for the rest of the node (database, CDR spool, gateway links, the
HTTP API, logs), so the accepted connections alone can never make the node run out.

Strategy: node-local state, not a process, like `Admission`: the listener, the connections and
the sessions' messages all run on this node's one trio loop, and each use is a few dict
operations without an await. Idle connections are kept in an ordered dict by last activity, so
finding the one to shed is O(1) and a message costs one ``move_to_end``.
"""

from __future__ import annotations

import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

import trio

from switchd.otp import Pid, self_pid, send

from ._tally import Cause, Tally, TallyStats

log = logging.getLogger(__name__)

FD_RESERVE = 128
"""File descriptors an automatic ``max_connections`` leaves to the rest of the node."""


class Closed(StrEnum):
    """Why the node closed an accepted connection itself (the ``closed`` counters' labels)."""

    IDLE = "idle"  # no call and no message for idle_timeout seconds
    SHED = "shed"  # idle, and its descriptor was needed (max_connections, or EMFILE at accept)
    MESSAGE_TIMEOUT = "message_timeout"  # a message not whole within message_timeout of its first byte


@dataclass(frozen=True, slots=True)
class CarriesCall:
    """Session → its caller's connection: I carry a dialog on you; watch me (see `attach_call`)."""

    session: Pid


@dataclass(frozen=True, slots=True)
class Shed:
    """Table → an idle connection: close now (the table has already let it go)."""

    reason: str


def attach_call(conn: Pid) -> None:
    """Tell the connection process `conn` that the calling process (a call session) carries a call on it.

    One message, no reply: the connection monitors the caller and is neither timed out nor shed
    until every session attached to it has exited. Call it once per session, from the session.
    """
    send(conn, CarriesCall(self_pid()))


def connection_limit(configured: int) -> int:
    """The number of accepted connections allowed: `configured`, or when 0 the soft RLIMIT_NOFILE less FD_RESERVE."""
    if configured > 0:
        return configured
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(1, soft - FD_RESERVE)


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """What the connection table did so far (for `switchd status` and the metrics)."""

    open: int  # accepted connections open now
    carrying_calls: int  # of which carry at least one call
    accepted: int  # connections admitted since start
    max_connections: int  # the limit in force (after the automatic choice)
    max_connections_per_ip: int  # 0: none
    accept_failures: int  # accepts that failed for want of file descriptors (or memory)
    closed: TallyStats  # closed by the node, by cause: idle, shed, message_timeout


class TrackedConnection:
    """One accepted connection's row in the table; written only by its own connection process."""

    __slots__ = ("calls", "host", "last_active", "open", "pid", "table")

    def __init__(self, table: ConnectionTable, pid: Pid, host: str, now: float) -> None:
        self.table = table
        self.pid = pid
        self.host = host
        self.calls = 0  # call sessions attached
        self.last_active = now  # the last complete message read, or the last call's end
        self.open = True  # False once unregistered or shed

    def touch(self, now: float) -> None:
        """A complete message arrived: the connection is in use (the last to be shed)."""
        self.last_active = now
        if self.calls == 0 and self.open:
            self.table._idle.move_to_end(self.pid)

    def attach(self) -> None:
        """A call session now carries a call on this connection."""
        self.calls += 1
        if self.calls == 1 and self.open:
            del self.table._idle[self.pid]

    def detach(self, now: float) -> None:
        """An attached session exited; with none left the connection is idle from `now`."""
        self.calls -= 1
        if self.calls == 0 and self.open:
            self.last_active = now
            self.table._idle[self.pid] = self

    def idle_for(self, now: float) -> float | None:
        """Seconds without a message and without a call; None while a call is attached."""
        return None if self.calls else now - self.last_active


class ConnectionTable:
    """The accepted connections of one node (see the module docstring).

    ``max_connections``: accepted connections in all; 0 means automatic (the soft RLIMIT_NOFILE
    less `FD_RESERVE`), 0.
    ``max_connections_per_ip``: accepted connections from one source address; 0 means no limit, 0.
    ``rejections``: the node's rejection tally (shared with `Admission`); a new one when not given.
    """

    __slots__ = ("_accept_failures", "_accepted", "_by_host", "_entries", "_idle", "closes", "max_connections",
                 "max_connections_per_ip", "rejections")

    def __init__(self, *, max_connections: int = 0, max_connections_per_ip: int = 0,
                 rejections: Tally | None = None) -> None:
        if max_connections < 0 or max_connections_per_ip < 0:
            raise ValueError(f"ConnectionTable: limits must be >= 0, not {max_connections!r}, "
                             f"{max_connections_per_ip!r}")
        self.max_connections = connection_limit(max_connections)
        self.max_connections_per_ip = max_connections_per_ip
        self.rejections = rejections or Tally("refused", log)
        self.closes = Tally("connections closed", log, level=logging.INFO)
        self._entries: dict[Pid, TrackedConnection] = {}
        self._idle: OrderedDict[Pid, TrackedConnection] = OrderedDict()  # quiet longest first
        self._by_host: dict[str, int] = {}
        self._accepted = 0
        self._accept_failures = 0

    def __len__(self) -> int:
        return len(self._entries)

    def admit(self, host: str, peer: str) -> bool:
        """Whether a connection just accepted from `host` (`peer`: host and port, for the log) may stay.

        At the global limit the longest-idle connection is shed to make room; False (counted and
        logged) when the address is at its own limit, or every connection carries a call.
        """
        per_ip = self.max_connections_per_ip
        if per_ip and self._by_host.get(host, 0) >= per_ip:
            self.rejections.note(Cause.CONNECTIONS_PER_IP,
                                 "connection from %s refused: %d connections from that address already",
                                 peer, per_ip, extra={"peer": peer, "limit": per_ip})
            return False
        if len(self._entries) >= self.max_connections and not self.shed_idle("max_connections reached"):
            self.rejections.note(Cause.CONNECTIONS,
                                 "connection from %s refused: %d connections open, each carrying calls",
                                 peer, len(self._entries), extra={"peer": peer, "limit": self.max_connections})
            return False
        return True

    def register(self, pid: Pid, host: str) -> TrackedConnection:
        """Enter the connection process `pid` (from `host`); it starts idle, active now."""
        entry = TrackedConnection(self, pid, host, trio.current_time())
        self._entries[pid] = entry
        self._idle[pid] = entry
        self._by_host[host] = self._by_host.get(host, 0) + 1
        self._accepted += 1
        return entry

    def unregister(self, entry: TrackedConnection) -> None:
        """Remove a connection that ended; a no-op for one already shed."""
        if not entry.open:
            return
        entry.open = False
        del self._entries[entry.pid]
        self._idle.pop(entry.pid, None)
        left = self._by_host[entry.host] - 1
        if left:
            self._by_host[entry.host] = left
        else:
            del self._by_host[entry.host]

    def shed_idle(self, reason: str) -> bool:
        """Close the connection idle longest (it is told with `Shed`); False when none is idle."""
        if not self._idle:
            return False
        _, entry = self._idle.popitem(last=False)
        self.unregister(entry)
        send(entry.pid, Shed(reason))
        self.closes.note(Closed.SHED, "shed idle connection %s (%s)", entry.pid, reason,
                         extra={"peer": entry.host, "reason": reason})
        return True

    def accept_failed(self) -> None:
        """Count an accept that failed for want of resources (the listener logs the episode)."""
        self._accept_failures += 1

    def statistics(self) -> ConnectionStats:
        """A snapshot of the counters."""
        return ConnectionStats(len(self._entries), len(self._entries) - len(self._idle), self._accepted,
                               self.max_connections, self.max_connections_per_ip, self._accept_failures,
                               self.closes.statistics())
