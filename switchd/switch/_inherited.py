"""Listen sockets a parent process bound and handed down: what a worker of `switchd run --workers N` uses.

The supervisor of workers (switchd.workers) binds every SIP listen address itself, once per
worker, with SO_REUSEPORT, and starts worker `i` with socket `i` of each address inherited
(`subprocess.Popen(pass_fds=...)`) and named in the environment variable `SOCKETS_ENV`:

    SWITCHD_SOCKETS="tcp 127.0.0.1 5060 3;udp 127.0.0.1 5060 4"

(kind, host and port as the configuration writes them, then the descriptor). The TCP listener
and the UDP socket processes ask `inherited_sockets` before binding: when the parent handed
down a socket for their address they use it instead of binding one.

Why the parent binds rather than each worker: the kernel spreads connections and datagrams over
the sockets of a SO_REUSEPORT group by a hash of the 4-tuple *modulo the group's size, in the
order the sockets joined*. Sockets the parent holds for the whole run keep that group fixed: a
worker that dies does not leave it (its socket stays open in the parent; connections and
datagrams hashed to it wait in its queue for the restarted worker, which inherits the same
socket), so the other workers' UDP peers are never re-hashed to another worker, and no queued
connection is reset. See docs/scale.md.

Each call hands back a duplicate (`socket.dup()`): a listener or UDP socket process that is
restarted inside the worker closes its duplicate at exit and gets a new one of the same socket,
which stays open in this process under its original descriptor.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

SOCKETS_ENV = "SWITCHD_SOCKETS"
"""The environment variable naming the sockets a worker inherited (see the module docstring)."""

Kind = Literal["tcp", "udp"]


@dataclass(frozen=True, slots=True)
class InheritedSocket:
    """One listen socket handed down: `kind` at `host`:`port` (as configured) is descriptor `fd`."""

    kind: Kind
    host: str
    port: int
    fd: int

    def __str__(self) -> str:
        return f"{self.kind} {self.host} {self.port} {self.fd}"


def encode_sockets(sockets: Iterable[InheritedSocket]) -> str:
    """The value of `SOCKETS_ENV` naming `sockets` (the parent's side)."""
    return ";".join(str(s) for s in sockets)


def parse_sockets(text: str) -> tuple[InheritedSocket, ...]:
    """The sockets `text` (a `SOCKETS_ENV` value) names; raises ValueError naming a bad entry."""
    found: list[InheritedSocket] = []
    for entry in filter(None, text.split(";")):
        parts = entry.split(" ")
        if len(parts) != 4 or parts[0] not in ("tcp", "udp") or not parts[2].isdigit() or not parts[3].isdigit():
            raise ValueError(f"{SOCKETS_ENV}: {entry!r} is not 'tcp|udp HOST PORT FD'")
        kind: Kind = "tcp" if parts[0] == "tcp" else "udp"
        found.append(InheritedSocket(kind, parts[1], int(parts[2]), int(parts[3])))
    return tuple(found)


def inherited_sockets(kind: Kind, host: str, port: int,
                      environ: Mapping[str, str] = os.environ) -> list[socket.socket]:
    """Duplicates of the sockets the parent handed down for `kind` `host`:`port`; [] when none.

    Raises ValueError when `SOCKETS_ENV` is malformed (only a parent sets it) and OSError when a
    descriptor it names is not open.
    """
    wanted = [s for s in parse_sockets(environ.get(SOCKETS_ENV, "")) if (s.kind, s.host, s.port) == (kind, host, port)]
    return [socket.socket(fileno=os.dup(s.fd)) for s in wanted]


def is_inherited(kind: Kind, host: str, port: int, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the parent handed down a socket for `kind` `host`:`port` (nothing is duplicated)."""
    return any((s.kind, s.host, s.port) == (kind, host, port) for s in parse_sockets(environ.get(SOCKETS_ENV, "")))
