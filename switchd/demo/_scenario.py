"""The scenario `switchd demo` plays: one node, two simulated carriers and a caller population, in
one trio run (one process tree), with short timers so that it is over in seconds.

What it shows, in order: calls with every ending (answered, busy, no answer, failover after a 503,
a caller who cancels); one call process killed (only that call ends: both legs get BYE, its CDR
is closed as a crash); the router killed (the root supervisor restarts it; no call notices); the
routing policy upgraded under load with `change_code` (`swap_policy`); then the node stopped and
its CDRs counted against the calls the callers placed — the proof that nothing was lost.

Everything lives in a temporary directory: the configuration the node ran with (usable with
``switchd cdr --config``), the rate deck, the SQLite database and the CDR spool.
"""

from __future__ import annotations

import logging
import socket
import textwrap
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import trio
from sqlalchemy import select
from sqlalchemy.orm import Session

from switchd.app import check_start, serve
from switchd.billing import Cdr, CdrStatus, GroupBy, SummaryRow, open_engine, summarize
from switchd.config import Config, load
from switchd.otp import OTPError, Pid, Report, ReportKind, processes, set_report_handler, stop, whereis
from switchd.sim import (
    Answer,
    Behaviours,
    Busy,
    CallResult,
    NeverAnswer,
    Outcome,
    Reject,
    open_uac,
    start_sim,
)
from switchd.switch import a_leg_name, router_state, swap_policy

log = logging.getLogger(__name__)

NODE = "demo"


class Kind(StrEnum):
    """What a demo call is set up to do; the dialled prefix picks the carrier's behaviour."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no answer"
    FAILOVER = "failover"
    CANCELLED = "cancelled"
    LONG = "long call"


PREFIX = {  # dialled number = prefix + 4 digits: an 11-digit North American number the deck rates
    Kind.ANSWERED: "1415555", Kind.BUSY: "1415556", Kind.NO_ANSWER: "1415557",
    Kind.FAILOVER: "1415558", Kind.CANCELLED: "1415559", Kind.LONG: "1415554",
}
# One round of the mix, repeated: mostly answered calls, every other ending at least once a round.
MIX = (Kind.ANSWERED, Kind.ANSWERED, Kind.BUSY, Kind.ANSWERED, Kind.FAILOVER, Kind.LONG,
       Kind.ANSWERED, Kind.NO_ANSWER, Kind.ANSWERED, Kind.FAILOVER, Kind.ANSWERED, Kind.BUSY)

RATES = """\
prefix,description,price_per_minute,connect_fee,first_increment,next_increment,currency,valid_from,valid_to
1,USA and Canada,0.010000,0,6,6,USD,,
1415,USA San Francisco,0.008000,0,1,1,USD,,
44,United Kingdom,0.020000,0,60,60,USD,,
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoPlan:
    """How many calls, how fast, and the timers that keep the whole run short (seconds)."""

    calls: int = 36
    rate: float = 9.0  # new calls a second
    hold: float = 1.5  # an answered call, then the caller hangs up
    long_hold: float = 4.0  # the long calls, one of which is killed while up
    ring: float = 0.2  # carriers ring this long before answering
    no_answer: float = 2.0  # the node's timers.no_answer: CANCEL to the carrier, 480 to the caller
    cancel_after: float = 0.5  # the cancelling caller gives up this long after its INVITE
    kill_call_at: float = 1.5  # after the first INVITE: kill one call process
    kill_router_at: float = 2.5  # ... then the router
    swap_policy_at: float = 3.2  # ... then upgrade the routing policy
    callers: int = 4  # caller phones, each on its own TCP connection


@dataclass(slots=True)
class DemoProgress:
    """What the demo has done so far, for a live view (read it; the scenario writes it)."""

    plan: DemoPlan
    phase: str = "starting"
    placed: int = 0
    ended: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=8))  # the latest
    event_count: int = 0  # events so far
    placed_at: deque[float] = field(default_factory=lambda: deque(maxlen=256))  # trio times of INVITEs
    node_up: bool = False

    def cps(self, now: float, window: float = 1.0) -> float:
        """New calls a second over the last `window` seconds."""
        return sum(1 for t in self.placed_at if t > now - window) / window


@dataclass(frozen=True, slots=True)
class CdrLine:
    """The fields of one CDR the demo prints (read before the database is closed)."""

    call_id: str
    caller: str
    callee: str
    disposition: str
    sip_code: int | None
    billed_seconds: int | None
    cost: str
    gateway: str
    hangup: str


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What the demo did and found: the calls, the CDRs, and where the data is."""

    results: tuple[tuple[Kind, CallResult], ...]
    cdrs: tuple[CdrLine, ...]
    summary: tuple[SummaryRow, ...]  # by disposition
    destinations: tuple[SummaryRow, ...]  # by rated prefix
    workdir: Path
    config_path: Path
    database_url: str
    killed_call: str | None  # Call-ID of the call whose process was killed
    router_restarts: int
    policy_before: str
    policy_after: str
    node_exit: int
    elapsed: float

    @property
    def missing(self) -> tuple[str, ...]:
        """Call-IDs of placed calls without a CDR (empty: none lost)."""
        have = {c.call_id for c in self.cdrs}
        return tuple(r.call_id for _, r in self.results if r.call_id not in have)

    @property
    def left_open(self) -> int:
        """CDRs still open after the node stopped (0: every call was closed)."""
        return sum(1 for c in self.cdrs if c.disposition == "open")

    @property
    def ok(self) -> bool:
        """Every placed call has exactly one closed CDR; a call was killed, the router came back and
        the policy changed; the node stopped cleanly."""
        return (not self.missing and self.left_open == 0 and len(self.cdrs) == len(self.results)
                and self.killed_call is not None and self.router_restarts >= 1 and self.policy_after != self.policy_before
                and self.node_exit == 0)


def outcome_label(kind: Kind, result: CallResult) -> str:
    """How a demo call ended, in a word or three."""
    match result.outcome:
        case Outcome.ANSWERED if result.hangup_by == "callee":
            return "ended by the switch"
        case Outcome.ANSWERED:
            return "answered after failover" if kind is Kind.FAILOVER else "answered"
        case Outcome.CANCELLED:
            return f"cancelled ({result.final_status})"
        case Outcome.REJECTED:
            what = {486: "busy", 480: "no answer"}.get(result.final_status or 0, "rejected")
            return f"{what} ({result.final_status})"
    return str(result.outcome)


def write_workdir(workdir: Path, plan: DemoPlan) -> Path:
    """The demo's configuration and rate deck in `workdir`; returns the configuration's path."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rates.csv").write_text(RATES, encoding="utf-8")
    sip, api, carrier_a, carrier_b = (_free_port() for _ in range(4))
    path = workdir / "switchd.toml"
    path.write_text(textwrap.dedent(f"""\
        # The configuration `switchd demo` ran its node with; `switchd cdr --config {path}` reads its CDRs.
        node = "{NODE}"
        data_dir = "data"

        [sip]
        listen = "127.0.0.1:{sip}"

        [api]
        listen = "127.0.0.1:{api}"

        [billing]
        rate_deck = "rates.csv"

        [timers]
        no_answer = {plan.no_answer}
        drain_timeout = 2

        [routing]
        policy = "priority_weight"

        [[gateways]]
        name = "carrier-a"
        address = "127.0.0.1:{carrier_a}"

        [[gateways]]
        name = "carrier-b"
        address = "127.0.0.1:{carrier_b}"

        [[routes]]
        id = "everything"
        prefix = ""
        gateways = ["carrier-a", "carrier-b"]
        """), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def run_demo(workdir: Path, *, plan: DemoPlan = DemoPlan(),
                   progress: DemoProgress | None = None) -> DemoReport:
    """Play the scenario in `workdir` (see the module docstring); returns what happened.

    Call it in the main thread (the node installs signal handlers). `progress`, if given, is
    kept up to date for a live view. Raises StartError / ConfigError when the node cannot start.
    """
    progress = progress or DemoProgress(plan)
    started = trio.current_time()
    config = load(write_workdir(workdir, plan))
    deck = await trio.to_thread.run_sync(check_start, config)
    restarts: list[Report] = []

    def on_report(report: Report) -> None:
        if report.kind is ReportKind.RESTART:
            restarts.append(report)
            _event(progress, f"supervisor {report.supervisor} restarted {report.child} (restart {report.restarts})")
        elif report.kind is ReportKind.CRASH and report.child is not None and not report.child.startswith("call:"):
            _event(progress, f"{report.child} crashed: {report.reason}")

    previous = set_report_handler(on_report)
    try:
        async with trio.open_nursery() as nursery:
            progress.phase = "starting two simulated carriers and the node"
            await _start_carriers(nursery, config, plan)
            codes: list[int] = []
            node_done = trio.Event()

            async def node(task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
                try:
                    codes.append(await serve(config, deck=deck, task_status=task_status))
                finally:
                    node_done.set()

            await nursery.start(node)
            progress.node_up = True
            policy_before = (await router_state()).policy
            _event(progress, f"node {NODE!r} up: SIP on {config.sip.listen}, routing policy {policy_before}")
            results, killed = await _place_calls(config, plan, progress)
            policy_after = (await router_state()).policy
            progress.phase = "stopping the node (it drains, then flushes its CDRs)"
            await stop("switchd", "shutdown", timeout=30)
            with trio.fail_after(30):
                await node_done.wait()  # serve has its exit code
            nursery.cancel_scope.cancel()  # the carriers
    finally:
        set_report_handler(previous)
    progress.phase = "counting CDRs against the calls placed"
    cdrs, by_disposition, by_destination = await trio.to_thread.run_sync(_read_billing, config)
    return DemoReport(
        results=tuple(results), cdrs=cdrs, summary=by_disposition, destinations=by_destination,
        workdir=workdir, config_path=config.path or workdir / "switchd.toml", database_url=config.database.url,
        killed_call=killed, router_restarts=sum(1 for r in restarts if r.child == "router"),
        policy_before=policy_before, policy_after=policy_after, node_exit=codes[0] if codes else 1,
        elapsed=trio.current_time() - started,
    )


def _event(progress: DemoProgress, text: str) -> None:
    progress.events.append(text)
    progress.event_count += 1
    log.info("demo: %s", text)


async def _start_carriers(nursery: trio.Nursery, config: Config, plan: DemoPlan) -> None:
    """carrier-a plays each kind of call by its prefix; carrier-b, the backup, answers everything."""
    a, b = config.routing.gateways
    rings = Answer(ring=plan.ring)
    carrier_a = Behaviours(default=rings, prefixes={
        PREFIX[Kind.BUSY]: Busy(), PREFIX[Kind.NO_ANSWER]: NeverAnswer(), PREFIX[Kind.CANCELLED]: NeverAnswer(),
        PREFIX[Kind.FAILOVER]: Reject(code=503),
    })
    await start_sim(nursery, [(a.host, a.port)], carrier_a, name="carrier-a")
    await start_sim(nursery, [(b.host, b.port)], Behaviours(default=rings), name="carrier-b")


async def _place_calls(config: Config, plan: DemoPlan,
                       progress: DemoProgress) -> tuple[list[tuple[Kind, CallResult]], str | None]:
    """The caller population: `plan.calls` calls at `plan.rate`, the kills and the swap on the way."""
    kinds = [MIX[i % len(MIX)] for i in range(plan.calls)]
    kinds[min(7, plan.calls - 1)] = Kind.CANCELLED  # one caller who gives up while it rings
    results: list[tuple[Kind, CallResult]] = []
    killed: list[str] = []
    server = (config.sip.listen.host, config.sip.listen.port)
    progress.phase = f"placing {plan.calls} calls at {plan.rate:g}/s from {plan.callers} phones"
    async with trio.open_nursery() as calls:
        phones = [await calls.start(_phone, server) for _ in range(plan.callers)]
        start = trio.current_time()
        calls.start_soon(_chaos, start, plan, progress, killed)

        async def one(index: int, kind: Kind) -> None:
            callee = f"{PREFIX[kind]}{index:04d}"
            hold = plan.long_hold if kind is Kind.LONG else plan.hold
            cancel_after = plan.cancel_after if kind is Kind.CANCELLED else None
            result = await phones[index % len(phones)].call(f"1212555{index:04d}", callee, hold=hold,
                                                            cancel_after=cancel_after, timeout=15.0)
            results.append((kind, result))
            progress.ended += 1
            progress.outcomes[outcome_label(kind, result)] += 1

        for index, kind in enumerate(kinds):
            await trio.sleep_until(start + index / plan.rate)
            progress.placed += 1
            progress.placed_at.append(trio.current_time())
            calls.start_soon(one, index, kind)
        progress.phase = "waiting for the calls in flight to end"
        while progress.ended < len(kinds):
            await trio.sleep(0.05)
        calls.cancel_scope.cancel()  # the phones
    return results, killed[0] if killed else None


async def _phone(server: tuple[str, int], task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
    async with open_uac(server) as uac:
        task_status.started(uac)
        await trio.sleep_forever()


async def _chaos(start: float, plan: DemoPlan, progress: DemoProgress, killed: list[str]) -> None:
    """Kill a call, then the router, then upgrade the policy, at the plan's times."""
    await trio.sleep_until(start + plan.kill_call_at)
    victim = _answered_long_call()
    if victim is not None:
        pid, call_id, status = victim
        killed.append(call_id)
        _event(progress, f"killing call process {pid} ({status})")
        try:
            await stop(pid, "killed by switchd demo", timeout=5)
        except OTPError as exc:  # it ended by itself meanwhile
            _event(progress, f"the call ended before it could be killed: {exc}")
    await trio.sleep_until(start + plan.kill_router_at)
    router = whereis("router")
    _event(progress, f"killing the router {router}; calls keep going, the root supervisor restarts it")
    await stop("router", "killed by switchd demo", timeout=5)
    await trio.sleep_until(start + plan.swap_policy_at)
    before = (await router_state()).policy
    await swap_policy("least_cost")
    after = await router_state()
    _event(progress, f"hot code swap: router policy {before} -> {after.policy} (code_change; "
                     f"{len(after.table)} route kept, lookups queued meanwhile wait)")


def _answered_long_call() -> tuple[Pid, str, str] | None:
    """A call session up on one of the long calls: (pid, Call-ID, status), or None."""
    prefix = a_leg_name("")
    for info in processes():
        if (info.name is not None and info.name.startswith(prefix)
                and info.status.startswith("answered") and f"-> {PREFIX[Kind.LONG]}" in info.status):
            return info.pid, info.name.removeprefix(prefix), info.status
    return None


def _read_billing(config: Config) -> tuple[tuple[CdrLine, ...], tuple[SummaryRow, ...], tuple[SummaryRow, ...]]:
    engine = open_engine(config.database.url)
    try:
        with Session(engine) as session:
            rows = session.scalars(select(Cdr).where(Cdr.node == NODE).order_by(Cdr.setup_at, Cdr.id)).all()
            lines = tuple(_line(cdr) for cdr in rows)
            return (lines, tuple(summarize(session, GroupBy.DISPOSITION)),
                    tuple(summarize(session, GroupBy.DESTINATION)))
    finally:
        engine.dispose()


def _line(cdr: Cdr) -> CdrLine:
    disposition = cdr.disposition.value if cdr.disposition is not None else cdr.status.value
    if cdr.status is CdrStatus.OPEN:
        disposition = "open"
    cost = "" if cdr.cost is None else f"{cdr.cost:f} {cdr.currency or ''}".strip()
    hangup = "" if cdr.hangup_by is None else cdr.hangup_by.value
    if cdr.hangup_cause:
        hangup = f"{hangup}: {cdr.hangup_cause}" if hangup else str(cdr.hangup_cause)
    return CdrLine(call_id=cdr.call_id, caller=cdr.caller or cdr.caller_raw, callee=cdr.callee or cdr.callee_raw,
                   disposition=disposition, sip_code=cdr.sip_code, billed_seconds=cdr.billed_seconds,
                   cost=cost, gateway=cdr.gateway or "", hangup=hangup)

