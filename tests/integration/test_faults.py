"""Faults during calls: a crashed call, a crashed Router or BillingStore, and SIGTERM's drain.

The crash tests run the whole node in the test's trio loop (`switchd.app.serve`, the daemon's own
entry point) so the test can reach its processes by name and crash one with
``otp.stop(name_or_pid, RuntimeError(...))`` — an abnormal exit, as a bug would make. The test
learns where calls are from the node's own call events (a handler added to "events"), never by
sleeping. The drain test signals a real `python -m switchd run` process.

Callers are switchd.sim UACs (the test sees each call's SIP ladder); the callee is a SIPp UAS,
whose statistics prove every B-leg got its BYE (a call counts as successful for SIPp's `uas` only
when its BYE came and was answered).
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from switchd import otp
from switchd.app import serve
from switchd.billing import Cdr, CdrStatus, Disposition, HangupParty
from switchd.config import Config
from switchd.sim import CallResult, Outcome, UacConnection, open_uac, place_call
from switchd.sip import Response
from switchd.switch import CallAnswered, CallEnded, CallState, a_leg_name
from tests.conftest import require_binary
from tests.integration._daemon import GatewaySpec, Switchd, read_cdrs, write_config
from tests.integration._sipp import SippCallee, SippStats, free_tcp_port, run_caller
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

CALLER = "14155550199"
CALLEE = "14155550100"


# --- the node in-process, and what its call events say -------------------------------------------


@dataclass
class CallLog:
    """The call events the node emitted so far, and a way to wait for one."""

    events: list[object] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event)

    def add(self, event: object) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_until(self, done: Callable[[CallLog], bool], *, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not done(self):
                await self._changed.wait()


class _Recorder(otp.EventHandler[CallLog]):
    """Appends every event of the node's EventManager to the test's CallLog."""

    async def init(self, arg: Any) -> CallLog:
        assert isinstance(arg, CallLog)
        return arg

    async def handle_event(self, event: Any, state: CallLog) -> CallLog:
        state.add(event)
        return state


@dataclass(frozen=True, slots=True)
class Node:
    config: Config
    calls: CallLog
    callee: SippCallee

    @property
    def target(self) -> str:
        return str(self.config.sip.listen)


async def _serve(config: Config, codes: list[int], *, task_status: trio.TaskStatus[otp.Pid]) -> None:
    codes.append(await serve(config, task_status=task_status))


@asynccontextmanager
async def running_node(tmp_path: Path) -> AsyncIterator[Node]:
    """A SIPp callee, and switchd in this trio loop routing every number to it; stopped cleanly after."""
    sipp = require_binary("sipp")
    callee = await trio.to_thread.run_sync(partial(SippCallee, sipp, tmp_path, port=free_tcp_port()))
    codes: list[int] = []
    try:
        config = write_config(tmp_path / "node", [GatewaySpec("gw1", callee.port)]).config
        async with trio.open_nursery() as nursery:
            await nursery.start(_serve, config, codes)
            calls = CallLog()
            await otp.add_handler("events", "itest", _Recorder, calls)
            yield Node(config, calls, callee)
            await otp.stop("switchd", timeout=30.0)
        assert codes == [0]
    finally:
        await trio.to_thread.run_sync(callee.stop)


def answered(count: int) -> Callable[[CallLog], bool]:
    return lambda log: len(log.of(CallAnswered)) >= count


def bye_from_switch(result: CallResult) -> bool:
    """The caller's answered call was ended by a BYE it received (and answered 200)."""
    return [(e.direction, e.label) for e in result.ladder[-2:]] == [("received", "BYE"), ("sent", "200 OK (BYE)")]


async def _until_confirmed(session: otp.Pid) -> None:
    """Until the caller's ACK reached the session (CallAnswered is emitted when the callee answers;
    the 200 may still be held for the CDR open, and the ACK may be in flight behind it)."""
    with trio.fail_after(5):
        while (await otp.get_state(session))[0] is not CallState.ANSWERED:
            await trio.sleep(0.005)


async def _call_into(results: dict[str, CallResult], key: str, uac: UacConnection, *, hold: float) -> None:
    results[key] = await uac.call(CALLER, CALLEE, hold=hold, timeout=10)


# --- a crashed call ------------------------------------------------------------------------------


async def test_a_crashed_call_session_hangs_up_both_legs_and_closes_its_cdr_while_a_parallel_call_goes_on(
    tmp_path: Path,
) -> None:
    results: dict[str, CallResult] = {}
    async with running_node(tmp_path) as node, open_uac(node.target) as uac:
        async with trio.open_nursery() as calls:
            calls.start_soon(partial(_call_into, results, "doomed", uac, hold=30.0))
            await node.calls.wait_until(answered(1))
            calls.start_soon(partial(_call_into, results, "other", uac, hold=1.5))
            await node.calls.wait_until(answered(2))
            doomed_id = node.calls.of(CallAnswered)[0].call_id
            session = otp.whereis(a_leg_name(doomed_id))
            assert session is not None
            await _until_confirmed(session)
            await otp.stop(session, RuntimeError("injected crash"))
        callee_stats = await trio.to_thread.run_sync(node.callee.stop)

    doomed, other = results["doomed"], results["other"]
    assert doomed.call_id == doomed_id
    assert doomed.outcome is Outcome.ANSWERED and bye_from_switch(doomed), doomed.ladder
    assert (other.outcome, other.hangup_by) == (Outcome.ANSWERED, "caller")
    assert not bye_from_switch(other)
    # both B-legs were hung up: SIPp's uas counts a call as done when its BYE came and got 200
    assert (callee_stats.incoming, callee_stats.successful, callee_stats.failed) == (2, 2, 0)

    by_call = {c.call_id: c for c in read_cdrs(node.config.database.url)}
    assert len(by_call) == 2
    crashed, normal = by_call[doomed.call_id], by_call[other.call_id]
    # the caller had confirmed the answer: ANSWERED and billed to the crash, ended by the switch
    assert (crashed.status, crashed.disposition, crashed.hangup_by, crashed.hangup_cause) == (
        CdrStatus.CLOSED, Disposition.ANSWERED, HangupParty.SWITCH, "crash")
    assert (normal.status, normal.disposition, normal.hangup_by) == (
        CdrStatus.CLOSED, Disposition.ANSWERED, HangupParty.CALLER)
    assert 1450 <= (normal.billable_ms or 0) < 2500


# --- crashed servers the calls use ---------------------------------------------------------------


async def test_router_and_billing_store_crashes_end_no_call_in_flight_and_lose_no_cdr(tmp_path: Path) -> None:
    results: dict[str, CallResult] = {}
    async with running_node(tmp_path) as node, open_uac(node.target) as uac:
        async with trio.open_nursery() as calls:
            for n in range(10):
                calls.start_soon(partial(_call_into, results, f"before-{n}", uac, hold=2.0))
            await node.calls.wait_until(answered(10))
            await otp.stop("router", RuntimeError("injected router crash"))
            await otp.stop("billing", RuntimeError("injected billing crash"))
            for n in range(10):  # placed at once: they meet the servers restarting, then the new ones
                calls.start_soon(partial(_call_into, results, f"after-{n}", uac, hold=0.5))
        callee_stats = await trio.to_thread.run_sync(node.callee.stop)

    assert len(results) == 20
    for key, result in results.items():
        assert (result.outcome, result.hangup_by) == (Outcome.ANSWERED, "caller"), (key, result)
    assert (callee_stats.incoming, callee_stats.successful, callee_stats.failed) == (20, 20, 0)
    ended = node.calls.of(CallEnded)
    assert len(ended) == 20 and {e.disposition for e in ended} == {Disposition.ANSWERED}

    cdrs = read_cdrs(node.config.database.url)
    assert sorted(c.call_id for c in cdrs) == sorted(r.call_id for r in results.values())
    assert {(c.status, c.disposition, c.hangup_by) for c in cdrs} == {
        (CdrStatus.CLOSED, Disposition.ANSWERED, HangupParty.CALLER)}
    holds = {r.call_id: (2.0 if key.startswith("before") else 0.5) for key, r in results.items()}
    for cdr in cdrs:
        hold_ms = holds[cdr.call_id] * 1000
        assert hold_ms - 50 <= (cdr.billable_ms or 0) < hold_ms + 1000, (cdr.call_id, cdr.billable_ms)
        assert cdr.rated and cdr.cost is not None and cdr.cost > Decimal(0)


# --- SIGTERM: the drain --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drained:
    """What a drain did: the callers' results, the refused call, the exit status, CDRs, the callee's view."""

    results: dict[str, CallResult]
    refused: CallResult
    drain_took: float  # SIGTERM → the long call's BYE answered, seconds
    code: int
    cdrs: dict[str, Cdr]
    callee: SippStats
    log: str


async def drain_two_calls(start_switchd: StartSwitchd, tmp_path: Path) -> Drained:
    """A short and a long call in flight, then SIGTERM (drain_timeout 2 s) and one more call."""
    sipp = require_binary("sipp")
    callee = await trio.to_thread.run_sync(partial(SippCallee, sipp, tmp_path, port=free_tcp_port()))
    try:
        switchd: Switchd = await trio.to_thread.run_sync(
            lambda: start_switchd([GatewaySpec("gw1", callee.port)], timers={"drain_timeout": 2.0}))
        results: dict[str, CallResult] = {}
        async with open_uac(switchd.target) as uac, trio.open_nursery() as calls:
            calls.start_soon(partial(_call_into, results, "short", uac, hold=1.0))
            calls.start_soon(partial(_call_into, results, "long", uac, hold=30.0))
            # the daemon is another process: its CDRs say when both calls are answered
            await trio.to_thread.run_sync(partial(
                switchd.wait_for_cdrs, lambda cdrs: len(cdrs) == 2 and all(c.answer_at for c in cdrs)))
            signalled_at = trio.current_time()
            switchd.signal(signal.SIGTERM)
            refused = await place_call(switchd.target, CALLER, CALLEE, timeout=5)
        drain_took = trio.current_time() - signalled_at
        code = await trio.to_thread.run_sync(switchd.wait, 10.0)
    finally:
        callee_stats = await trio.to_thread.run_sync(callee.stop)
    cdrs = {c.call_id: c for c in await trio.to_thread.run_sync(switchd.cdrs)}
    return Drained(results, refused, drain_took, code, cdrs, callee_stats, switchd.log())


async def test_sigterm_refuses_new_calls_lets_short_calls_finish_and_hangs_up_the_rest_at_the_drain_timeout(
    start_switchd: StartSwitchd, tmp_path: Path,
) -> None:
    drained = await drain_two_calls(start_switchd, tmp_path)

    assert drained.code == 0, drained.log
    refused = drained.refused
    assert (refused.outcome, refused.final_status) == (Outcome.REJECTED, 503), refused
    final = [e.message for e in refused.ladder if e.direction == "received"][-1]
    assert isinstance(final, Response) and final.headers.get("Retry-After") == "2"  # the drain timeout
    short, long = drained.results["short"], drained.results["long"]
    assert (short.outcome, short.hangup_by) == (Outcome.ANSWERED, "caller")  # finished by itself
    assert long.outcome is Outcome.ANSWERED and bye_from_switch(long), long.ladder  # ended by the drain
    assert 2.0 <= drained.drain_took < 4.0  # ... at the drain timeout
    # The refused call never reached the callee; both B-legs got their BYE (SIPp's uas counts a call
    # successful only then) — the drained call's too, although its session only queued that BYE
    # with the gateway link right before the tree stopped: the link, shut down, writes its mailbox
    # before it closes.
    callee = drained.callee
    assert (callee.incoming, callee.successful, callee.failed) == (2, 2, 0), drained.log

    assert {c.status for c in drained.cdrs.values()} == {CdrStatus.CLOSED}
    assert (drained.cdrs[short.call_id].disposition, drained.cdrs[short.call_id].hangup_by) == (
        Disposition.ANSWERED, HangupParty.CALLER)
    ended = drained.cdrs[long.call_id]
    assert (ended.disposition, ended.hangup_by, ended.hangup_cause) == (
        Disposition.ANSWERED, HangupParty.SWITCH, "shutdown")
    assert ended.billable_ms is not None and ended.billable_ms >= 2000


# --- a caller that vanishes -------------------------------------------------------------------------


def test_a_caller_that_vanishes_instead_of_answering_the_bye_does_not_keep_its_call_up(
    start_switchd: StartSwitchd, tmp_path: Path,
) -> None:
    sipp = require_binary("sipp")
    callee = SippCallee(sipp, tmp_path, port=free_tcp_port())
    try:
        switchd = start_switchd([GatewaySpec("gw1", callee.port)],
                                timers={"max_call_duration": 1.0, "drain_timeout": 4.0})
        run = run_caller(sipp, tmp_path, switchd.target, scenario="uac_vanish_on_bye.xml", calls=1,
                         service=CALLEE, timeout_s=20)
        assert (run.stats.successful, run.stats.failed) == (1, 0), run.errors
        switchd.wait_closed(1)
        signalled_at = time.monotonic()
        code = switchd.stop(timeout=15.0)
        took = time.monotonic() - signalled_at
    finally:
        callee.stop()
    assert code == 0
    assert took < 2.5, f"the drain waited {took:.1f}s for a call whose caller was gone"
