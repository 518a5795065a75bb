"""Server nonces for digest authentication: stateless to verify, expiring, with replay-proof counts.

A nonce is ``base64url(issued ‖ random ‖ HMAC-SHA256(secret, issued ‖ random)[:16])``: 8 bytes of
issue time (the float the caller hands in, big-endian), 8 random bytes, 16 bytes of MAC. Whoever
holds the secret can tell one of its own nonces, and how old it is, without having kept it — so a
challenge costs no memory, and a flood of challenged requests none either.

* `check`: UNKNOWN for anything that is not ours (another secret: another node or a previous run;
  tampered; issued "in the future"), STALE once `ttl` seconds old, else VALID. A server answers a
  correct response under a STALE or UNKNOWN nonce with a new challenge marked ``stale=true``
  (RFC 2617 §3.2.1: the client retries without asking its user), and anything else as wrong.
* `count`: the nonce count (``nc``) of each nonce must grow (RFC 2617 §3.2.2: a repeated count is a
  replay). The highest count is kept per nonce — only for nonces whose response verified, so
  guessing costs no memory — and at most `max_tracked` of them: expired entries go first, then
  the least recently first used. A nonce that had to be forgotten is refused from then on (it is
  no older than the newest one forgotten): forgetting can never let a replay through.

Times are whatever clock the caller uses (trio's, in switchd), in seconds; nothing here reads one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
import struct
from enum import Enum

__all__ = ["NonceCheck", "Nonces"]

_TIME = struct.Struct(">d")
_MAC_LENGTH = 16
_RAW_LENGTH = _TIME.size + 8 + _MAC_LENGTH


class NonceCheck(Enum):
    """What `Nonces.check` found."""

    VALID = "valid"
    STALE = "stale"  # ours, but older than the ttl
    UNKNOWN = "unknown"  # not ours (another secret, tampered, from the future, not a nonce at all)


class Nonces:
    """Issues and checks the nonces of one secret (see the module docstring).

    ``secret``: at least 16 bytes; whoever shares it shares the nonces.
    ``ttl``: seconds a nonce is good for, > 0.
    ``max_tracked``: nonces whose count is remembered at once, >= 1, 10_000.
    """

    __slots__ = ("_counts", "_forgotten_up_to", "_secret", "max_tracked", "ttl")

    def __init__(self, secret: bytes, *, ttl: float, max_tracked: int = 10_000) -> None:
        if len(secret) < 16:
            raise ValueError("Nonces: the secret must be at least 16 bytes")
        if not (ttl > 0 and math.isfinite(ttl)):
            raise ValueError(f"Nonces: ttl must be a positive number of seconds, not {ttl!r}")
        if max_tracked < 1:
            raise ValueError(f"Nonces: max_tracked must be >= 1, not {max_tracked!r}")
        self._secret = secret
        self.ttl = ttl
        self.max_tracked = max_tracked
        self._counts: dict[str, tuple[float, int]] = {}  # nonce -> (issued, highest count); first use order
        self._forgotten_up_to = -math.inf  # the newest issue time of a nonce dropped while still fresh

    @property
    def tracked(self) -> int:
        """How many nonces have their count remembered now."""
        return len(self._counts)

    def issue(self, now: float) -> str:
        """A new nonce issued at `now`."""
        head = _TIME.pack(now) + secrets.token_bytes(8)
        return base64.urlsafe_b64encode(head + self._mac(head)).decode("ascii")

    def check(self, nonce: str, now: float) -> NonceCheck:
        """Whether `nonce` is one of ours and fresh at `now`."""
        issued = self._issued(nonce)
        if issued is None or issued > now:
            return NonceCheck.UNKNOWN
        return NonceCheck.STALE if now - issued >= self.ttl else NonceCheck.VALID

    def count(self, nonce: str, nc: int, now: float) -> bool:
        """Take nonce count `nc` for `nonce` (which `check` found VALID); False for a replay or a forgotten nonce."""
        seen = self._counts.get(nonce)
        if seen is not None:
            if nc <= seen[1]:
                return False
            self._counts[nonce] = (seen[0], nc)
            return True
        issued = self._issued(nonce)
        if issued is None or issued <= self._forgotten_up_to or nc < 1:
            return False
        self._counts[nonce] = (issued, nc)
        if len(self._counts) > self.max_tracked:
            self._make_room(now)
        return True

    def _make_room(self, now: float) -> None:
        counts = self._counts
        expired = [n for n, (issued, _) in counts.items() if now - issued >= self.ttl]
        for nonce in expired:  # a stale nonce is refused by `check` anyway: forgetting it costs nothing
            del counts[nonce]
        while len(counts) > self.max_tracked:
            nonce = next(iter(counts))
            issued, _ = counts.pop(nonce)
            self._forgotten_up_to = max(self._forgotten_up_to, issued)

    def _mac(self, head: bytes) -> bytes:
        return hmac.new(self._secret, head, hashlib.sha256).digest()[:_MAC_LENGTH]

    def _issued(self, nonce: str) -> float | None:
        """The issue time of `nonce` if it is one of ours, else None."""
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (ValueError, binascii.Error):  # not ASCII, or not base64
            return None
        if len(raw) != _RAW_LENGTH:
            return None
        head, mac = raw[:-_MAC_LENGTH], raw[-_MAC_LENGTH:]
        if not hmac.compare_digest(mac, self._mac(head)):
            return None
        issued: float = _TIME.unpack(head[: _TIME.size])[0]
        return issued if math.isfinite(issued) else None
