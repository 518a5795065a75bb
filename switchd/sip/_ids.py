"""Fresh identifiers: Via branches, From/To tags and Call-IDs (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3).

All three come from the operating system's CSPRNG (`os.urandom`, what `secrets` reads): tags and
Call-IDs must be unguessable (§19.3 asks for at least 32 random bits; we use 64 for tags and
branches, 96 for Call-IDs), and a branch must be unique across space and time for every
transaction this node ever starts (§8.1.1.7). The bytes are read 4 KiB at a time and handed out
in order, each byte once — a call takes about six identifiers, and a system call each was a
measurable share of a call's CPU; a forked child drops what its parent had read, so two
processes never hand out the same bytes.
"""

from __future__ import annotations

import os

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: every branch we create starts with it, marking RFC 3261 transaction ids."""


_POOL_SIZE = 4096


class _Pool:
    """Random bytes read ahead from `os.urandom`; `take(n)` hands out the next n, never twice."""

    __slots__ = ("at", "data")

    def __init__(self) -> None:
        self.data = b""
        self.at = 0

    def take(self, n: int) -> bytes:
        at = self.at
        if at + n > len(self.data):
            self.data, at = os.urandom(_POOL_SIZE), 0
        self.at = at + n
        return self.data[at:at + n]

    def drop(self) -> None:
        self.data, self.at = b"", 0


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.drop)


def new_branch() -> str:
    """A new Via branch for a new client transaction: the magic cookie then 64 random bits in hex."""
    return MAGIC_COOKIE + _POOL.take(8).hex()


def new_tag() -> str:
    """A new From/To tag (§19.3): 64 random bits in hex."""
    return _POOL.take(8).hex()


def new_call_id(host: str | None = None) -> str:
    """A new Call-ID (§8.1.1.4): 96 random bits in hex, then `@host` when a host is given."""
    local = _POOL.take(12).hex()
    return f"{local}@{host}" if host else local
