"""Latencies inside the server under test, from a loopback capture (sipp_cps.sh -C -o DIR keeps it).

A proxy (Kamailio) keeps the Call-ID on both sides; a B2BUA (switchd) gives the callee leg its own,
so the legs of a call are paired with `call_map` (A-leg Call-ID -> B-leg Call-ID, from switchd's
CDRs). bench/sip_pcap_latency.py (the kit's tool, whose reader this uses) pairs by Call-ID only.

Per A-leg Call-ID, `read_legs` finds the caller's first INVITE to the server and the server's first
final response to it (its code and time), and the INVITE the server sent to the callee and the
callee's 200 to it. `Wire` then gives INVITE in -> out and 200 in -> out inside the server, and
`final_latency` INVITE in -> final response out for a given code (503 for overload).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from sip_pcap_latency import messages


@dataclass
class Leg:
    """One side of a call on the wire: first INVITE and first final response (code, time)."""

    invite: float | None = None
    final: tuple[int, float] | None = None


@dataclass
class Capture:
    """Both legs of every call in a capture, by Call-ID of each leg."""

    a: dict[str, Leg] = field(default_factory=dict)  # caller <-> server
    b: dict[str, Leg] = field(default_factory=dict)  # server <-> callee


def read_legs(pcap: Path, server_port: int, callee_port: int) -> Capture:
    found = Capture()
    for ts, sport, dport, first, call_id, cseq in messages(str(pcap)):  # type: ignore[no-untyped-call]
        if call_id is None or cseq != "INVITE":
            continue
        on_b = callee_port in (sport, dport)
        legs = found.b if on_b else found.a
        leg = legs.setdefault(call_id, Leg())
        if first.startswith("INVITE "):
            if leg.invite is None and dport == (callee_port if on_b else server_port):
                leg.invite = ts
        elif first.startswith("SIP/2.0 "):
            code = int(first[8:11])
            if code >= 200 and leg.final is None and sport == (callee_port if on_b else server_port):
                leg.final = (code, ts)
    return found


def call_map(database: Path) -> dict[str, str]:
    """A-leg Call-ID -> B-leg Call-ID of every CDR in switchd's SQLite file."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        return {a: b for a, b in db.execute("SELECT call_id, b_call_id FROM cdrs WHERE b_call_id IS NOT NULL")}


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Wire:
    """INVITE in -> out and 200 in -> out inside the server, in microseconds, per answered call."""

    invite_us: list[float]
    ok_us: list[float]
    setup_us: list[float]  # INVITE in -> 200 out, as the caller sees it (includes the callee)

    @classmethod
    def of(cls, capture: Capture, pairs: dict[str, str] | None) -> Wire:
        invite, ok, setup = [], [], []
        for a_id, a in capture.a.items():
            b = capture.b.get(pairs.get(a_id, "") if pairs is not None else a_id)
            if a.invite is None or a.final is None or a.final[0] != 200:
                continue
            setup.append((a.final[1] - a.invite) * 1e6)
            if b is None or b.invite is None or b.final is None or b.final[0] != 200:
                continue
            invite.append((b.invite - a.invite) * 1e6)
            ok.append((a.final[1] - b.final[1]) * 1e6)
        return cls(invite, ok, setup)

    def summary(self) -> str:
        def four(values: list[float]) -> str:
            return (f"p50 {pct(values, 0.5):.0f} p95 {pct(values, 0.95):.0f} p99 {pct(values, 0.99):.0f} us")
        return (f"INVITE in->out {four(self.invite_us)}; 200 in->out {four(self.ok_us)}; "
                f"setup at the caller p50 {pct(self.setup_us, 0.5):.0f} us ({len(self.invite_us)} calls paired)")


def final_latency(capture: Capture, code: int, *, since: float = -math.inf) -> list[float]:
    """INVITE in -> final response `code` out at the server, in microseconds, for each call answered so
    whose INVITE came in at `since` or later (capture time)."""
    return [(a.final[1] - a.invite) * 1e6 for a in capture.a.values()
            if a.invite is not None and a.invite >= since and a.final is not None and a.final[0] == code]
