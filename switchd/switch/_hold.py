"""Hold, as an SDP offer says it (RFC 3264 §8.4), and the clock of a call's time on hold.

A party puts a call on hold with a re-INVITE or UPDATE whose offer marks its streams
``a=sendonly`` (or ``a=inactive``; the old RFC 2543 way is a connection address of 0.0.0.0), and
takes it off hold with another offer that does not. The switch passes SDP through untouched and
only reads it here, for the CDR's `hold_ms`: a call is on hold while either party's last accepted
offer held it. Billing ignores hold time; it is for the record (and for disputes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._leg_state import LegRole

_HOLDING = frozenset({"sendonly", "inactive"})
_DIRECTIONS = _HOLDING | {"sendrecv", "recvonly"}


def holds(body: bytes) -> bool | None:
    """True when the SDP offer `body` holds every active stream; False when it does not; None if not SDP.

    A stream is active when its m= port is not 0 (RFC 3264 §8.2 disables a stream with port 0); it
    is held when its direction (its own a= line, else the session's) is sendonly or inactive, or
    its connection address (its own c= line, else the session's) is 0.0.0.0. An SDP without an
    active stream says the same of the session level. Never raises: any bytes are read as far as
    they make sense (an undecodable byte is replaced).
    """
    text = body.decode("utf-8", "replace")
    lines = [line.strip() for line in text.split("\n")]
    if not lines or not lines[0].startswith("v="):
        return None
    session: dict[str, str] = {}
    streams: list[dict[str, str]] = []
    current = session
    for line in lines[1:]:
        kind, _, value = line.partition("=")
        if kind == "m":
            fields = value.split()
            current = {"port": fields[1] if len(fields) > 1 else ""}
            streams.append(current)
        elif kind == "a" and value in _DIRECTIONS:
            current["direction"] = value
        elif kind == "c":
            fields = value.split()
            current["address"] = fields[2].partition("/")[0] if len(fields) > 2 else ""
    active = [s for s in streams if s["port"] != "0"]
    return all(_held(stream, session) for stream in active) if active else _held(session, session)


def _held(stream: dict[str, str], session: dict[str, str]) -> bool:
    direction = stream.get("direction", session.get("direction", "sendrecv"))
    address = stream.get("address", session.get("address", ""))
    return direction in _HOLDING or address == "0.0.0.0"


@dataclass(slots=True)
class HoldClock:
    """How long a call has been on hold: on hold while either party's last accepted offer holds it."""

    holders: set[LegRole] = field(default_factory=set)
    since: float | None = None  # when the current hold began (trio time), None when not on hold
    total: float = 0.0  # seconds of the holds that ended

    def offer(self, party: LegRole, hold: bool, now: float) -> None:
        """`party`'s offer, answered 2xx at `now`, holds the call (`hold`) or takes its own hold off."""
        if hold:
            if not self.holders:
                self.since = now
            self.holders.add(party)
            return
        self.holders.discard(party)
        if not self.holders and self.since is not None:
            self.total += now - self.since
            self.since = None

    def seconds(self, now: float) -> float:
        """Seconds on hold up to `now`, the current hold included."""
        return self.total + (0.0 if self.since is None else now - self.since)
