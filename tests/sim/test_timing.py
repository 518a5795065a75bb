"""Caller and callee timing, exact to the virtual second: memory streams and the autojump clock.

The sim's UAC and a simulator tree talk over `memory_stream_pair()`, so ring times, holds,
CANCEL, timeouts and the SIP timers (2xx retransmission, Timer H) are checked at the exact
instants they are due.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import pytest
import trio
import trio.testing

from switchd.otp import count_children, terminate_child, which_children
from switchd.sim import (
    Answer,
    Behaviours,
    Busy,
    CallResult,
    NeverAnswer,
    Outcome,
    SimGateway,
    start_sim,
    uac_over,
)
from switchd.sip import NEED_DATA, Connection, Request, Response, make_request

SERVER = ("127.0.0.1", 5060)
CLIENT = ("127.0.0.1", 40000)
BEHAVIOURS = Behaviours(default=Answer(ring=2.0), prefixes={"0": NeverAnswer(), "486": Busy(),
                                                            "7": Answer(ring=1.0, hangup_after=4.0)})


@pytest.fixture
async def sim() -> AsyncIterator[SimGateway]:
    async with trio.open_nursery() as nursery:
        yield await start_sim(nursery, [], BEHAVIOURS, name="vsim")
        nursery.cancel_scope.cancel()


async def _connect(sim: SimGateway) -> trio.abc.Stream:
    """The caller end of a memory stream whose other end `sim` serves as if accepted on SERVER."""
    client, server = trio.testing.memory_stream_pair()
    await sim.serve_stream(server, local=SERVER)
    return client


async def _call(sim: SimGateway, callee: str, **options: float) -> CallResult:
    async with uac_over(await _connect(sim), local=CLIENT, server=SERVER) as uac:
        return await uac.call("1000", callee, **options)  # type: ignore[arg-type]


def _times(result: CallResult) -> list[tuple[float, str, str]]:
    return [(round(e.at, 6), e.direction, e.label) for e in result.ladder]


async def test_answer_rings_for_its_ring_time_and_the_caller_holds_for_hold(
    sim: SimGateway, autojump_clock: trio.testing.MockClock
) -> None:
    result = await _call(sim, "2000", hold=3.0)
    assert _times(result) == [
        (0.0, "sent", "INVITE"), (0.0, "received", "100 Trying"), (0.0, "received", "180 Ringing"),
        (2.0, "received", "200 OK"), (2.0, "sent", "ACK"), (5.0, "sent", "BYE"), (5.0, "received", "200 OK (BYE)"),
    ]
    assert result.setup_latency == pytest.approx(2.0)


async def test_the_callee_hangs_up_hangup_after_seconds_after_its_200(
    sim: SimGateway, autojump_clock: trio.testing.MockClock
) -> None:
    result = await _call(sim, "7000", hold=60.0)
    assert (result.outcome, result.hangup_by) == (Outcome.ANSWERED, "callee")
    assert _times(result)[-2:] == [(5.0, "received", "BYE"), (5.0, "sent", "200 OK (BYE)")]


async def test_cancel_after_sends_cancel_at_that_time_and_ends_with_487(
    sim: SimGateway, autojump_clock: trio.testing.MockClock
) -> None:
    result = await _call(sim, "0123", cancel_after=7.5)
    assert result.outcome is Outcome.CANCELLED
    assert _times(result)[3:] == [
        (7.5, "sent", "CANCEL"), (7.5, "received", "200 OK (CANCEL)"),
        (7.5, "received", "487 Request Terminated"), (7.5, "sent", "ACK"),
    ]


async def test_a_call_with_no_answer_is_cancelled_at_its_timeout(
    sim: SimGateway, autojump_clock: trio.testing.MockClock
) -> None:
    result = await _call(sim, "0123", timeout=10.0)
    assert result.outcome is Outcome.TIMEOUT
    assert result.final_status == 487
    assert (round(result.ladder[3].at, 6), result.ladder[3].label) == (10.0, "CANCEL")


async def test_a_server_that_never_answers_times_out_without_cancel(autojump_clock: trio.testing.MockClock) -> None:
    client, _silent = trio.testing.memory_stream_pair()
    async with uac_over(client, local=CLIENT, server=SERVER) as uac:
        result = await uac.call("1000", "2000", timeout=5.0)
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "no final response within 5s"
    assert [e.label for e in result.ladder] == ["INVITE"]  # §9.1: no CANCEL before a provisional
    assert trio.current_time() == pytest.approx(5.0)


# --- the callee against a hand-written caller that misbehaves ------------------------------------------


class RawPeer:
    """The caller end of a memory stream, written by hand: send requests, read what comes back."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.framing = Connection()

    async def send(self, message: Request) -> None:
        await self.stream.send_all(self.framing.send(message))

    async def receive(self) -> Response | Request:
        while True:
            event = self.framing.next_event()
            if event is not NEED_DATA:
                assert isinstance(event, Response | Request)
                return event
            self.framing.receive_data(bytes(await self.stream.receive_some(65536)))


def _invite(callee: str) -> Request:
    return make_request("INVITE", f"sip:{callee}@127.0.0.1:5060", from_="<sip:1000@127.0.0.1:40000>",
                        to=f"<sip:{callee}@127.0.0.1:5060>", sent_by="127.0.0.1:40000",
                        contact="<sip:1000@127.0.0.1:40000;transport=tcp>")


async def _raw_invite(sim: SimGateway, callee: str) -> RawPeer:
    """A RawPeer on a new connection to `sim` that has sent an INVITE to `callee`."""
    peer = RawPeer(await _connect(sim))
    await peer.send(_invite(callee))
    return peer


async def test_a_200_without_ack_is_retransmitted_then_the_callee_gives_up_with_bye(
    sim: SimGateway, autojump_clock: trio.testing.MockClock
) -> None:
    peer = await _raw_invite(sim, "2000")
    seen: list[tuple[float, str]] = []
    while True:
        message = await peer.receive()
        label = str(message.method) if isinstance(message, Request) else str(message.status)
        seen.append((trio.current_time(), label))
        if label == "BYE":
            break
    # §13.3.1.4: 200 at 2.0, again after T1, 2T1, 4T1 … capped at T2 (4 s), BYE at 64*T1 = 32 s after it.
    assert seen == [(0.0, "100"), (0.0, "180"), (2.0, "200"), (2.5, "200"), (3.5, "200"), (5.5, "200"),
                    (9.5, "200"), (13.5, "200"), (17.5, "200"), (21.5, "200"), (25.5, "200"), (29.5, "200"),
                    (33.5, "200"), (34.0, "BYE")]


async def test_a_busy_callee_waits_for_the_ack_at_most_timer_h(
    sim: SimGateway, autojump_clock: trio.testing.MockClock
) -> None:
    peer = await _raw_invite(sim, "4860")
    assert [getattr(await peer.receive(), "status", None) for _ in range(2)] == [100, 486]
    await trio.sleep(31.9)
    assert (await count_children("vsim.calls")).active == 1  # still waiting for the ACK
    await trio.sleep(0.2)
    assert (await count_children("vsim.calls")).active == 0  # Timer H (64*T1 = 32 s) ended it


async def test_the_callee_ends_when_its_connection_closes(
    sim: SimGateway, autojump_clock: trio.testing.MockClock
) -> None:
    peer = await _raw_invite(sim, "0999")
    assert [getattr(await peer.receive(), "status", None) for _ in range(2)] == [100, 180]
    assert (await count_children("vsim.calls")).active == 1
    await peer.stream.aclose()
    await trio.testing.wait_all_tasks_blocked()
    assert (await count_children("vsim.calls")).active == 0
    assert (await count_children("vsim.connections")).active == 0
    assert trio.current_time() == 0.0


async def test_a_killed_callee_ends_only_its_own_call(
    sim: SimGateway, autojump_clock: trio.testing.MockClock
) -> None:
    results: dict[str, CallResult] = {}
    async with uac_over(await _connect(sim), local=CLIENT, server=SERVER) as uac:

        async def call(callee: str, **options: float) -> None:
            results[callee] = await uac.call("1000", callee, **options)  # type: ignore[arg-type]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(call, "0111", timeout=10.0))  # rings until cancelled
            await trio.sleep(0.5)
            nursery.start_soon(partial(call, "2000", hold=1.0))  # answers at +2, hangs up at +3
            await trio.sleep(0.5)
            children = await which_children("vsim.calls")  # in start order: the ringing one first
            assert len(children) == 2 and children[0].pid is not None
            await terminate_child("vsim.calls", children[0].pid)
    survivor = results["2000"]
    assert (survivor.outcome, survivor.hangup_by) == (Outcome.ANSWERED, "caller")
    assert _times(survivor)[3:] == [(2.0, "received", "200 OK"), (2.0, "sent", "ACK"), (3.0, "sent", "BYE"),
                                    (3.0, "received", "200 OK (BYE)")]
    orphan = results["0111"]
    # Its callee is gone: the CANCEL at the timeout finds no call (481) and no 487 ever comes.
    assert orphan.outcome is Outcome.TIMEOUT and orphan.final_status is None
    assert [(round(e.at, 6), e.label) for e in orphan.ladder[3:]] == [
        (10.0, "CANCEL"), (10.0, "481 Call/Transaction Does Not Exist (CANCEL)"),
    ]


async def test_a_simulator_at_max_calls_answers_503_with_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, [], BEHAVIOURS, name="full", max_calls=1)
        results: list[CallResult] = []
        async with uac_over(await _connect(sim), local=CLIENT, server=SERVER) as uac:

            async def call(callee: str, **options: float) -> None:
                results.append(await uac.call("1000", callee, **options))  # type: ignore[arg-type]

            async with trio.open_nursery() as calls:
                calls.start_soon(partial(call, "0111", cancel_after=5.0))
                await trio.sleep(1.0)
                calls.start_soon(call, "2000")
        nursery.cancel_scope.cancel()
    refused, cancelled = results
    assert (refused.final_status, refused.setup_latency) == (503, 0.0)
    refusal = refused.ladder[1].message
    assert refusal.retry_after is not None and refusal.retry_after.seconds == 1
    assert cancelled.outcome is Outcome.CANCELLED
