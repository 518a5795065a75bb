"""Exact billing, checked against what the callers saw: the fault tests' verdict.

The lead's definition, per Call-ID of the callers' SIPp traces (`_traces.CallerView`) against the
node's CDRs:

a. every call whose caller received any response other than 100 Trying has exactly one CDR; no
   Call-ID has two; no CDR is left `open` once the node has been stopped (or restarted) cleanly;
b. every call the caller saw end (a final non-2xx, its BYE answered, or the node's BYE it
   answered) has a `closed` CDR — not `recovered` — with the disposition and SIP code of that end;
   an answered one billed its talk time: billable_ms within 150 ms of the hold the caller saw;
c. (with `kill_at`) every call up at a kill -9 — answered, not seen to end — has a `recovered` CDR,
   ANSWERED with sip_code 200, ending no earlier than kill − heartbeat interval − 1 s (and not after
   the kill);
d. call setup latency (the caller's INVITE → its first 180/183 or final answer) p99 < 50 ms; with a
   fault window (a database outage), the p99 of the calls set up during it < 50 ms, or no more than
   1.5× the p99 of the same run's calls outside it — the requirement is that the outage does not
   slow setup, and a slow machine (2026-12-02: a 2.5× slower box, 77 ms p99 at 30 cps with no
   fault at all) must not turn the node's own clean speed into a verdict on its fault handling.

`check_exact` returns every violation with the Call-IDs it concerns; `Exactness.figures()` is the
one-line account a failing test prints (lost, duplicated, open, p99 ...).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from switchd.billing import Cdr, CdrStatus, Disposition, HangupParty, disposition_for

from ._traces import CallerView

HOLD_TOLERANCE_S = 0.150
SETUP_P99_LIMIT_S = 0.050
OUTAGE_P99_MARGIN = 1.5  # d. with a fault window: × the same run's p99 outside it
KILL_SLACK_S = 1.0  # c: recovered calls end no earlier than kill − heartbeat − this


@dataclass
class Exactness:
    """The violations of a–d found, by kind, each a list of "call-id: detail" lines."""

    calls: int = 0  # Call-IDs the callers sent an INVITE for
    taken_on: int = 0  # ... that got more than 100 Trying
    cdrs: int = 0
    setup_p99: float | None = None  # seconds
    violations: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, call_id: str, detail: str = "") -> None:
        self.violations.setdefault(kind, []).append(f"{call_id}: {detail}" if detail else call_id)

    def count(self, kind: str) -> int:
        return len(self.violations.get(kind, []))

    def figures(self) -> str:
        p99 = "n/a" if self.setup_p99 is None else f"{self.setup_p99 * 1000:.1f} ms"
        kinds = ", ".join(f"{kind} {len(v)}" for kind, v in sorted(self.violations.items())) or "none"
        return (f"{self.calls} calls, {self.taken_on} taken on, {self.cdrs} CDRs; setup p99 {p99}; "
                f"violations: {kinds}")

    def report(self, *, examples: int = 5) -> str:
        lines = [self.figures()]
        for kind, found in sorted(self.violations.items()):
            lines.append(f"  {kind} ({len(found)}): " + "; ".join(found[:examples]) + (" …" if len(found) > examples else ""))
        return "\n".join(lines)


def p99(values: Sequence[float]) -> float | None:
    """The 99th percentile by nearest rank (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def check_exact(views: Mapping[str, CallerView], cdrs: Sequence[Cdr], *, kill_at: float | None = None,
                heartbeat: float = 2.0, setup: bool = True, fault: tuple[float, float] | None = None) -> Exactness:
    """Every violation of a, b, d (and c with `kill_at`, epoch seconds); see the module docstring.

    `setup` False leaves d out (the kill test: setup right at a kill measures nothing). `fault`:
    the outage's (begin, end), epoch seconds, for d.
    """
    verdict = Exactness(calls=sum(v.invite_at is not None for v in views.values()), cdrs=len(cdrs))
    per_call = Counter(c.call_id for c in cdrs)
    by_call = {c.call_id: c for c in cdrs}
    for call_id, n in per_call.items():
        if n > 1:
            verdict.add("duplicated", call_id, f"{n} CDRs")
    for cdr in cdrs:
        if cdr.status is CdrStatus.OPEN:
            verdict.add("left open", cdr.call_id)
    for view in views.values():
        if not view.got_more_than_trying:
            continue
        verdict.taken_on += 1
        found = by_call.get(view.call_id)
        if found is None:
            verdict.add("lost", view.call_id, f"caller saw {[s for _, s, _ in view.responses]}")
        elif view.ended_at is not None:
            _check_ended(verdict, view, found)
        elif kill_at is not None and view.answered_at is not None and view.answered_at <= kill_at:
            _check_recovered(verdict, view, found, kill_at, heartbeat)
    if setup:
        _check_setup(verdict, views, fault)
    return verdict


def _check_setup(verdict: Exactness, views: Mapping[str, CallerView], fault: tuple[float, float] | None) -> None:
    """d: setup p99 of every call, or with `fault` of the calls set up during it against the rest."""
    timed = [v for v in views.values() if v.setup_latency is not None and v.invite_at is not None]
    if fault is None:
        verdict.setup_p99 = p99([v.setup_latency for v in timed if v.setup_latency is not None])
        if verdict.setup_p99 is not None and verdict.setup_p99 >= SETUP_P99_LIMIT_S:
            verdict.add("setup p99 >= 50 ms", "all calls", f"{verdict.setup_p99 * 1000:.1f} ms")
        return
    begin, end = fault
    during = [v.setup_latency for v in timed if v.setup_latency is not None and begin <= (v.invite_at or 0) <= end]
    clean = [v.setup_latency for v in timed if v.setup_latency is not None and not begin <= (v.invite_at or 0) <= end]
    verdict.setup_p99 = p99(during)
    clean_p99 = p99(clean)
    limit = max(SETUP_P99_LIMIT_S, OUTAGE_P99_MARGIN * (clean_p99 or 0.0))
    if verdict.setup_p99 is not None and verdict.setup_p99 >= limit:
        verdict.add("setup p99 during the fault >= max(50 ms, 1.5x the clean p99)", "calls during the fault",
                    f"{verdict.setup_p99 * 1000:.1f} ms ({len(during)} calls); outside it "
                    f"{(clean_p99 or 0.0) * 1000:.1f} ms ({len(clean)} calls)")


def _check_ended(verdict: Exactness, view: CallerView, cdr: Cdr) -> None:
    """b: a call the caller saw end is closed, with that end's disposition, code and talk time."""
    final = view.final
    assert final is not None  # a call seen to end had its final answer
    if cdr.status is not CdrStatus.CLOSED:
        verdict.add("ended but not closed", view.call_id, f"status {cdr.status.value}")
    expected = disposition_for(final[1])
    if (cdr.disposition, cdr.sip_code) != (expected, final[1]):
        verdict.add("wrong disposition", view.call_id,
                    f"caller saw {final[1]}, CDR says {cdr.disposition} {cdr.sip_code}")
    hold = view.hold
    if hold is not None and (cdr.billable_ms is None or abs(cdr.billable_ms / 1000 - hold) > HOLD_TOLERANCE_S):
        verdict.add("misbilled", view.call_id, f"held {hold * 1000:.0f} ms, billed {cdr.billable_ms} ms")


def _check_recovered(verdict: Exactness, view: CallerView, cdr: Cdr, kill_at: float, heartbeat: float) -> None:
    """c: a call up at the kill is recovered as answered, ending within the heartbeat bound of the kill.

    Unless the caller's BYE went out before the kill and the CDR is closed by it: the node commits
    the close before it answers the BYE (write-ahead), so a kill between the two leaves a call the
    caller never saw end, rightly closed as its hang-up.
    """
    if view.bye_sent_at is not None and view.bye_sent_at <= kill_at and cdr.status is CdrStatus.CLOSED:
        if (cdr.disposition, cdr.hangup_by) != (Disposition.ANSWERED, HangupParty.CALLER):
            verdict.add("closed wrong", view.call_id, f"{cdr.disposition} by {cdr.hangup_by} after the caller's BYE")
        return
    problems = []
    if cdr.status is not CdrStatus.RECOVERED:
        problems.append(f"status {cdr.status.value}")
    if (cdr.disposition, cdr.sip_code) != (Disposition.ANSWERED, 200):
        problems.append(f"{cdr.disposition} {cdr.sip_code}, not ANSWERED 200")
    end = None if cdr.end_at is None else cdr.end_at.timestamp()
    if end is None or not kill_at - heartbeat - KILL_SLACK_S <= end <= kill_at + 0.5:
        answered = f"answered {kill_at - (view.answered_at or kill_at):.1f} s before the kill"
        problems.append(f"ends {'never' if end is None else f'{end - kill_at:+.1f} s from the kill'} ({answered})")
    if problems:
        verdict.add("recovered wrong", view.call_id, ", ".join(problems))
