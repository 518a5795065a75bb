"""End to end with the simulator: switchd's simulated phone calls switchd, which calls simulated gateways.

    switchd.sim UAC (this test) --TCP--> `python -m switchd run` --TCP--> switchd.sim gateway(s)

The daemon is a real child process (its own trio loop, SQLite file and timers); the caller and
the gateways run in the test's trio loop on 127.0.0.1. Each test checks the SIP ladder the
caller saw and the CDR the daemon wrote (read back after a clean SIGTERM stop, exit status 0).

The caller dials 14155550100: +1 415 is priced 0.008 per minute in 1 s increments by the sample
deck, so the cost of an answered call follows its billable time to the second.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
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
    NeverAnswer,
    Outcome,
    Reject,
    UacConnection,
    open_uac,
    place_call,
    start_sim,
)
from tests.integration._daemon import GatewaySpec, Switchd
from tests.integration._sipp import free_tcp_port
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

CALLER = "14155550199"
CALLEE = "14155550100"
CALLEE_E164 = "+14155550100"
SF_PRICE = Decimal("0.008")  # per minute, 1 s increments: the sample deck's prefix 1415

ANSWERED_LADDER = [
    ("sent", "INVITE"), ("received", "100 Trying"), ("received", "180 Ringing"), ("received", "200 OK"),
    ("sent", "ACK"), ("sent", "BYE"), ("received", "200 OK (BYE)"),
]


@dataclass(frozen=True, slots=True)
class Sim:
    """A simulated gateway: `behaviour` for every number, listening on 127.0.0.1:`port`."""

    name: str
    behaviour: Behaviour


@dataclass(frozen=True, slots=True)
class Setup:
    """A running switchd and a caller connected to it."""

    switchd: Switchd
    caller: UacConnection

    async def call(self, *, hold: float = 0.0, cancel_after: float | None = None) -> CallResult:
        """One call from CALLER to CALLEE on the caller's connection (each call bounded at 10 s)."""
        return await self.caller.call(CALLER, CALLEE, hold=hold, cancel_after=cancel_after, timeout=10)


@asynccontextmanager
async def switch_between(
    start_switchd: StartSwitchd, gateways: Sequence[Sim | int], *, timers: Mapping[str, float] | None = None
) -> AsyncIterator[Setup]:
    """Simulated gateways (a Sim, or a closed port), a switchd routing every number to them in order,
    and a simulated phone connected to the switchd.

    On exit the daemon is stopped (SIGTERM) while the phone and the gateways are still connected, so
    whatever a call still has to hear from them (a 200 to its BYE) reaches it; then they stop.
    """
    async with trio.open_nursery() as nursery:
        specs = []
        for index, gateway in enumerate(gateways, start=1):
            if isinstance(gateway, int):
                specs.append(GatewaySpec(f"gw{index}", gateway))
                continue
            sim = await start_sim(nursery, ["127.0.0.1:0"], Behaviours(default=gateway.behaviour),
                                  name=gateway.name)
            specs.append(GatewaySpec(f"gw{index}", sim.addresses[0][1]))
        switchd = await trio.to_thread.run_sync(lambda: start_switchd(specs, timers=timers))
        async with open_uac(switchd.target) as caller:
            yield Setup(switchd, caller)
            await trio.to_thread.run_sync(switchd.stop)
        nursery.cancel_scope.cancel()


async def closed_cdr(switchd: Switchd) -> Cdr:
    """The one CDR the daemon wrote, closed, once it stopped cleanly (exit 0)."""
    assert switchd.returncode == 0, switchd.log()
    cdrs = await trio.to_thread.run_sync(switchd.cdrs)
    assert len(cdrs) == 1, [(c.call_id, c.disposition) for c in cdrs]
    cdr = cdrs[0]
    assert cdr.status is CdrStatus.CLOSED
    assert (cdr.callee, cdr.node) == (CALLEE_E164, "itest")
    assert cdr.setup_at is not None and cdr.end_at is not None
    assert cdr.duration_ms == (cdr.end_at - cdr.setup_at) // timedelta(milliseconds=1)
    return cdr


def ladder(result: CallResult) -> list[tuple[str, str]]:
    return [(entry.direction, entry.label) for entry in result.ladder]


def expected_cost(billable_ms: int) -> tuple[int, Decimal]:
    """Billed seconds and cost at 0.008 per minute in 1 s increments."""
    seconds = math.ceil(billable_ms / 1000)
    return seconds, (SF_PRICE * seconds / 60).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def assert_answered_cdr(cdr: Cdr, *, gateway: str = "gw1", b_attempts: int = 1) -> None:
    assert (cdr.disposition, cdr.sip_code) == (Disposition.ANSWERED, 200)
    assert (cdr.gateway, cdr.b_attempts) == (gateway, b_attempts)
    assert cdr.progress_at is not None and cdr.answer_at is not None and cdr.end_at is not None
    assert cdr.setup_at <= cdr.progress_at <= cdr.answer_at < cdr.end_at
    assert cdr.billable_ms == (cdr.end_at - cdr.answer_at) // timedelta(milliseconds=1)
    assert (cdr.rated, cdr.rate_prefix, cdr.currency) == (True, "1415", "USD")
    assert (cdr.billed_seconds, cdr.cost) == expected_cost(cdr.billable_ms)


async def test_an_answered_call_is_relayed_both_ways_and_billed_for_its_talk_time(
    start_switchd: StartSwitchd,
) -> None:
    async with switch_between(start_switchd, [Sim("sim", Answer(ring=0.2))]) as setup:
        # CDR times are stored to the millisecond, truncated: compare at that precision
        now = datetime.now(UTC)
        before = now.replace(microsecond=now.microsecond // 1000 * 1000)
        result = await setup.call(hold=1.2)
        after = datetime.now(UTC)
    assert result.outcome is Outcome.ANSWERED, (result, setup.switchd.log())
    assert ladder(result) == ANSWERED_LADDER
    assert result.setup_latency is not None and 0.2 <= result.setup_latency < 2.0
    cdr = await closed_cdr(setup.switchd)
    assert_answered_cdr(cdr)
    assert cdr.end_at is not None and before <= cdr.setup_at and cdr.end_at <= after
    assert cdr.call_id == result.call_id
    assert 1150 <= (cdr.billable_ms or 0) <= 2000
    assert cdr.billed_seconds in (2, 3)  # 1.2 s of talk and the BYE's transit, in whole seconds


async def test_a_busy_callee_is_relayed_486_and_the_cdr_says_busy(start_switchd: StartSwitchd) -> None:
    async with switch_between(start_switchd, [Sim("sim", Busy())]) as setup:
        result = await setup.call()
    assert (result.outcome, result.final_status) == (Outcome.REJECTED, 486), (result, setup.switchd.log())
    assert ladder(result) == [("sent", "INVITE"), ("received", "100 Trying"), ("received", "486 Busy Here"),
                              ("sent", "ACK")]
    cdr = await closed_cdr(setup.switchd)
    assert (cdr.disposition, cdr.sip_code, cdr.b_attempts) == (Disposition.BUSY, 486, 1)
    assert cdr.answer_at is None and cdr.billable_ms is None
    assert (cdr.billed_seconds, cdr.cost) == (0, Decimal(0))


async def test_a_call_nobody_answers_is_cancelled_at_the_no_answer_timeout_with_480(
    start_switchd: StartSwitchd,
) -> None:
    timers = {"no_answer": 1.0}
    async with switch_between(start_switchd, [Sim("sim", NeverAnswer())], timers=timers) as setup:
        result = await setup.call()
    assert (result.outcome, result.final_status) == (Outcome.REJECTED, 480), (result, setup.switchd.log())
    assert ladder(result) == [("sent", "INVITE"), ("received", "100 Trying"), ("received", "180 Ringing"),
                              ("received", "480 Temporarily Unavailable"), ("sent", "ACK")]
    assert result.setup_latency is not None and 1.0 <= result.setup_latency < 2.0
    cdr = await closed_cdr(setup.switchd)
    assert (cdr.disposition, cdr.sip_code, cdr.hangup_by) == (Disposition.NO_ANSWER, 480, HangupParty.SWITCH)
    assert cdr.progress_at is not None and cdr.answer_at is None
    assert 1000 <= (cdr.duration_ms or 0) < 2000
    assert (cdr.billed_seconds, cdr.cost) == (0, Decimal(0))


async def test_a_caller_that_cancels_while_ringing_gets_487_and_the_cdr_says_cancelled(
    start_switchd: StartSwitchd,
) -> None:
    async with switch_between(start_switchd, [Sim("sim", NeverAnswer())]) as setup:
        result = await setup.call(cancel_after=0.3)
    assert (result.outcome, result.final_status) == (Outcome.CANCELLED, 487), (result, setup.switchd.log())
    assert ladder(result) == [
        ("sent", "INVITE"), ("received", "100 Trying"), ("received", "180 Ringing"), ("sent", "CANCEL"),
        ("received", "200 OK (CANCEL)"), ("received", "487 Request Terminated"), ("sent", "ACK"),
    ]
    cdr = await closed_cdr(setup.switchd)
    assert (cdr.disposition, cdr.sip_code, cdr.hangup_by) == (Disposition.CANCELLED, 487, HangupParty.CALLER)
    assert cdr.progress_at is not None and cdr.answer_at is None
    assert (cdr.billed_seconds, cdr.cost) == (0, Decimal(0))


async def test_a_503_from_the_first_gateway_fails_over_to_the_second_unseen_by_the_caller(
    start_switchd: StartSwitchd,
) -> None:
    gateways = [Sim("unavailable", Reject(code=503)), Sim("working", Answer(ring=0.1))]
    async with switch_between(start_switchd, gateways) as setup:
        result = await setup.call(hold=0.3)
    assert result.outcome is Outcome.ANSWERED, (result, setup.switchd.log())
    assert ladder(result) == ANSWERED_LADDER
    assert_answered_cdr(await closed_cdr(setup.switchd), gateway="gw2", b_attempts=2)


async def test_a_refused_connection_to_the_first_gateway_fails_over_to_the_second(
    start_switchd: StartSwitchd,
) -> None:
    closed_port = free_tcp_port()  # nothing listens there: connect() is refused
    gateways: list[Sim | int] = [closed_port, Sim("working", Answer(ring=0.1))]
    async with switch_between(start_switchd, gateways) as setup:
        result = await setup.call(hold=0.3)
    assert result.outcome is Outcome.ANSWERED, (result, setup.switchd.log())
    assert ladder(result) == ANSWERED_LADDER
    assert_answered_cdr(await closed_cdr(setup.switchd), gateway="gw2", b_attempts=2)


async def test_when_the_caller_hangs_up_the_callee_gets_bye_and_the_cdr_says_the_caller_did(
    start_switchd: StartSwitchd,
) -> None:
    async with switch_between(start_switchd, [Sim("sim", Answer(ring=0.1))]) as setup:
        result = await setup.call(hold=0.5)
    assert (result.outcome, result.hangup_by) == (Outcome.ANSWERED, "caller"), (result, setup.switchd.log())
    assert ladder(result) == ANSWERED_LADDER
    cdr = await closed_cdr(setup.switchd)
    assert_answered_cdr(cdr)
    assert cdr.hangup_by is HangupParty.CALLER
    assert 450 <= (cdr.billable_ms or 0) <= 1300


async def test_when_the_callee_hangs_up_the_caller_gets_bye_and_the_cdr_says_the_callee_did(
    start_switchd: StartSwitchd,
) -> None:
    async with switch_between(start_switchd, [Sim("sim", Answer(ring=0.1, hangup_after=0.5))]) as setup:
        result = await setup.call(hold=10)
    assert (result.outcome, result.hangup_by) == (Outcome.ANSWERED, "callee"), (result, setup.switchd.log())
    assert ladder(result) == [
        ("sent", "INVITE"), ("received", "100 Trying"), ("received", "180 Ringing"), ("received", "200 OK"),
        ("sent", "ACK"), ("received", "BYE"), ("sent", "200 OK (BYE)"),
    ]
    cdr = await closed_cdr(setup.switchd)
    assert_answered_cdr(cdr)
    assert cdr.hangup_by is HangupParty.CALLEE
    assert 450 <= (cdr.billable_ms or 0) <= 1300


async def test_a_call_longer_than_max_call_duration_is_ended_by_the_switch_on_both_legs(
    start_switchd: StartSwitchd,
) -> None:
    timers = {"max_call_duration": 1.0}
    async with switch_between(start_switchd, [Sim("sim", Answer(ring=0.1))], timers=timers) as setup:
        result = await setup.call(hold=10)
    # the caller would have held 10 s; the switch's BYE came after 1 s
    assert (result.outcome, result.hangup_by) == (Outcome.ANSWERED, "callee"), (result, setup.switchd.log())
    assert ladder(result)[-2:] == [("received", "BYE"), ("sent", "200 OK (BYE)")]
    bye_at = result.ladder[-2].at
    answered_at = result.ladder[3].at
    assert 1.0 <= bye_at - answered_at < 1.8
    cdr = await closed_cdr(setup.switchd)
    assert_answered_cdr(cdr)
    assert cdr.hangup_by is HangupParty.SWITCH
    assert 1000 <= (cdr.billable_ms or 0) < 1800


async def test_a_one_call_caller_answers_the_callees_bye_before_it_closes_its_connection(
    start_switchd: StartSwitchd,
) -> None:
    """`place_call` (what `switchd call` runs) must put its 200 to the BYE on the wire before it closes
    the TCP connection; otherwise switchd's BYE transaction waits for it (Timer F) and the call holds
    its slot and the drain. The stop below would then wait out the 3 s drain."""
    async with switch_between(start_switchd, [Sim("sim", Answer(ring=0.1, hangup_after=0.3))],
                              timers={"drain_timeout": 3.0}) as setup:
        switchd = setup.switchd
        for _ in range(3):  # one call alone shows it about every other time
            result = await place_call(switchd.target, CALLER, CALLEE, hold=10, timeout=10)
            assert (result.outcome, result.hangup_by) == (Outcome.ANSWERED, "callee"), result
        await trio.to_thread.run_sync(partial(switchd.wait_closed, 3))
        signalled_at = trio.current_time()
        await trio.to_thread.run_sync(switchd.stop)
        took = trio.current_time() - signalled_at
    assert took < 1.5, f"switchd's drain waited {took:.1f}s: a BYE to the caller was never answered"
