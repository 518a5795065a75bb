"""The daemon as an operator runs it (docs/operations.md): SIGHUP reload, the call limit, a second
SIGTERM, and a SIGKILL with calls up — each against a real `python -m switchd run` process.

Callers and gateways are switchd.sim in the test's trio loop, on 127.0.0.1. What can only be seen
from outside the process (a reload done or refused) is read from the daemon's log.
"""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import pytest
import trio

from switchd.billing import Cdr, CdrStatus, Disposition, HangupParty
from switchd.sim import (
    Answer,
    Behaviour,
    Behaviours,
    Busy,
    CallResult,
    Outcome,
    UacConnection,
    open_uac,
    start_sim,
)
from switchd.sip import Response
from tests.integration._daemon import GatewaySpec, RouteSpec, Switchd, write_routes
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

CALLER = "14155550199"
CALLEE = "14155550100"


@asynccontextmanager
async def gateways(*behaviours: tuple[str, Behaviour]) -> AsyncIterator[list[GatewaySpec]]:
    """Simulated gateways named and behaving as given, on free 127.0.0.1 ports."""
    async with trio.open_nursery() as nursery:
        specs = []
        for name, behaviour in behaviours:
            sim = await start_sim(nursery, ["127.0.0.1:0"], Behaviours(default=behaviour), name=name)
            specs.append(GatewaySpec(name, sim.addresses[0][1]))
        yield specs
        nursery.cancel_scope.cancel()


async def call(uac: UacConnection, *, hold: float = 0.0) -> CallResult:
    return await uac.call(CALLER, CALLEE, hold=hold, timeout=10)


async def until_answered(switchd: Switchd, count: int) -> None:
    """Until `count` CDRs have an answer time (the daemon is another process: its database tells)."""
    await trio.to_thread.run_sync(partial(
        switchd.wait_for_cdrs, lambda cdrs: sum(c.answer_at is not None for c in cdrs) >= count))


def final_response(result: CallResult) -> Response:
    found = [e.message for e in result.ladder if e.direction == "received" and isinstance(e.message, Response)
             and e.message.status >= 200]
    assert found, result.ladder
    return found[-1]


# --- SIGHUP ---------------------------------------------------------------------------------------


async def test_sighup_sends_new_calls_by_the_new_routes_and_an_invalid_routes_file_changes_nothing(
    start_switchd: StartSwitchd,
) -> None:
    async with gateways(("busy", Busy()), ("answers", Answer(ring=0.1))) as (busy, answers):
        switchd = await trio.to_thread.run_sync(lambda: start_switchd([busy, answers], routes_file=True,
                                                                      routes=[RouteSpec("", ("busy",))]))
        routes_path = switchd.cfg.path.parent / "routes.toml"
        async with open_uac(switchd.target) as uac:
            before = await call(uac)

            write_routes(routes_path, [busy, answers], [RouteSpec("", ("answers",))])
            switchd.signal(signal.SIGHUP)
            await trio.to_thread.run_sync(partial(switchd.wait_for_log, "reloaded: 1 routes"))
            after = await call(uac, hold=0.2)

            # a route naming a gateway that does not exist: refused as a whole
            write_routes(routes_path, [busy, answers], [RouteSpec("", ("busy",)), RouteSpec("1", ("nowhere",))])
            switchd.signal(signal.SIGHUP)
            await trio.to_thread.run_sync(partial(switchd.wait_for_log, "reload refused, nothing changed"))
            refused = await call(uac, hold=0.2)
            await trio.to_thread.run_sync(switchd.stop)

    assert (before.outcome, before.final_status) == (Outcome.REJECTED, 486), before
    assert after.outcome is Outcome.ANSWERED, after
    assert refused.outcome is Outcome.ANSWERED, refused  # still the routes of the good reload
    assert "routes.toml" in switchd.log(tail=1000)  # the refusal names the file
    gateway_of = {c.call_id: c.gateway for c in switchd.cdrs()}
    assert [gateway_of[r.call_id] for r in (before, after, refused)] == ["busy", "answers", "answers"]


# --- the call limit -------------------------------------------------------------------------------


async def test_a_call_beyond_max_calls_gets_503_with_retry_after_and_the_call_in_progress_goes_on(
    start_switchd: StartSwitchd,
) -> None:
    async with gateways(("gw1", Answer(ring=0.1))) as specs:
        switchd = await trio.to_thread.run_sync(lambda: start_switchd(specs, max_calls=1))
        results: dict[str, CallResult] = {}

        async def first(uac: UacConnection) -> None:
            results["first"] = await call(uac, hold=1.5)

        async with open_uac(switchd.target) as uac, trio.open_nursery() as nursery:
            nursery.start_soon(first, uac)
            await until_answered(switchd, 1)
            results["second"] = await call(uac)
        await trio.to_thread.run_sync(switchd.stop)

    second = results["second"]
    assert (second.outcome, second.final_status) == (Outcome.REJECTED, 503), second
    assert final_response(second).headers.get("Retry-After") == "5"
    assert (results["first"].outcome, results["first"].hangup_by) == (Outcome.ANSWERED, "caller")
    by_call = {c.call_id: c for c in switchd.cdrs()}
    assert by_call[results["first"].call_id].disposition is Disposition.ANSWERED


# --- stopping hard ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stopped:
    call: CallResult
    took: float  # first signal → exit, seconds
    code: int
    cdr_after_stop: Cdr
    cdr_after_restart: Cdr


async def stop_with_a_call_up(start_switchd: StartSwitchd, signals: Sequence[signal.Signals]) -> Stopped:
    """One answered call held 30 s; send `signals` to the daemon; read its CDR; start it again."""
    async with gateways(("gw1", Answer(ring=0.1))) as specs:
        switchd = await trio.to_thread.run_sync(lambda: start_switchd(specs, timers={"drain_timeout": 30.0}))
        async with open_uac(switchd.target) as uac, trio.open_nursery() as nursery:
            results: list[CallResult] = []

            async def held() -> None:
                results.append(await uac.call(CALLER, CALLEE, hold=30.0, timeout=10))

            nursery.start_soon(held)
            await until_answered(switchd, 1)
            signalled_at = time.monotonic()
            for n, signum in enumerate(signals):
                if n:  # two signals at once are one (POSIX and trio coalesce): wait for the first's effect
                    await trio.to_thread.run_sync(partial(switchd.wait_for_log, "draining"))
                switchd.signal(signum)
            code = await trio.to_thread.run_sync(switchd.wait, 10.0)
            took = time.monotonic() - signalled_at
        [cdr_after_stop] = await trio.to_thread.run_sync(switchd.cdrs)
        restarted = await trio.to_thread.run_sync(start_switchd.again, switchd)
        [cdr_after_restart] = await trio.to_thread.run_sync(restarted.cdrs)
        await trio.to_thread.run_sync(restarted.stop)
    return Stopped(results[0], took, code, cdr_after_stop, cdr_after_restart)


async def test_a_second_sigterm_stops_at_once_and_bills_the_call_it_cuts_off_as_ended_by_the_switch(
    start_switchd: StartSwitchd,
) -> None:
    stopped = await stop_with_a_call_up(start_switchd, [signal.SIGTERM, signal.SIGTERM])
    assert stopped.code == 0
    assert stopped.took < 5.0  # the drain would have waited 30 s
    assert stopped.call.outcome in (Outcome.ANSWERED, Outcome.TRANSPORT_ERROR)  # cut off, not refused
    cut_off = stopped.cdr_after_stop
    assert (cut_off.status, cut_off.disposition, cut_off.hangup_by, cut_off.hangup_cause) == (
        CdrStatus.CLOSED, Disposition.ANSWERED, HangupParty.SWITCH, "shutdown")
    assert stopped.cdr_after_restart.status is CdrStatus.CLOSED  # nothing left for recovery


async def test_after_a_sigkill_the_next_start_closes_the_open_cdr_as_recovered(start_switchd: StartSwitchd) -> None:
    stopped = await stop_with_a_call_up(start_switchd, [signal.SIGKILL])
    assert stopped.code == -signal.SIGKILL
    assert stopped.call.outcome is Outcome.TRANSPORT_ERROR  # the caller's connection died with the node
    assert stopped.cdr_after_stop.status is CdrStatus.OPEN
    recovered = stopped.cdr_after_restart
    assert (recovered.status, recovered.disposition, recovered.hangup_by, recovered.hangup_cause) == (
        CdrStatus.RECOVERED, Disposition.ANSWERED, HangupParty.SWITCH, "recovered")
    assert recovered.answer_at is not None and recovered.end_at is not None
    assert recovered.answer_at <= recovered.end_at
    assert recovered.rated and recovered.cost is not None

