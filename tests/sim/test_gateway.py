"""The simulated gateway's behaviours, each over real 127.0.0.1 TCP, driven by the sim's own UAC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from switchd.otp import whereis, which_children
from switchd.sim import (
    AddressError,
    Answer,
    Behaviours,
    Busy,
    CallResult,
    Drop,
    NeverAnswer,
    Outcome,
    Reject,
    SimGateway,
    SimTransportError,
    open_uac,
    place_call,
    start_sim,
)

# Real sockets, real time: every test is bounded by this and by short ring/hold times.
LIMIT = 10.0

BEHAVIOURS = Behaviours(
    default=Answer(ring=0.05),
    prefixes={
        "486": Busy(),
        "503": Reject(code=503, retry_after=30),
        "404": Reject(code=404),
        "0": NeverAnswer(),
        "9": Drop(),
        "77": Answer(ring=0.0, hangup_after=0.1),
    },
)


@pytest.fixture
async def sim() -> AsyncIterator[SimGateway]:
    async with trio.open_nursery() as nursery:
        gateway = await start_sim(nursery, ["127.0.0.1:0"], BEHAVIOURS, name="gw")
        yield gateway
        nursery.cancel_scope.cancel()


def _lines(result: CallResult) -> list[tuple[str, str]]:
    return [(entry.direction, entry.label) for entry in result.ladder]


async def test_answer_rings_then_answers_and_the_caller_hangs_up(sim: SimGateway) -> None:
    with trio.fail_after(LIMIT):
        result = await place_call(sim.addresses[0], "1000", "2000", hold=0.1)
    assert result.outcome is Outcome.ANSWERED
    assert result.final_status == 200
    assert result.hangup_by == "caller"
    assert _lines(result) == [
        ("sent", "INVITE"), ("received", "100 Trying"), ("received", "180 Ringing"), ("received", "200 OK"),
        ("sent", "ACK"), ("sent", "BYE"), ("received", "200 OK (BYE)"),
    ]
    assert result.setup_latency is not None and result.setup_latency >= 0.05
    ok = result.ladder[3].message
    assert ok.body.startswith(b"v=0") and ok.headers.get("Content-Type") == "application/sdp"
    bye = result.ladder[5]
    assert bye.at - result.ladder[4].at >= 0.1  # held for `hold` seconds


async def test_busy_prefix_answers_486_which_the_caller_acks(sim: SimGateway) -> None:
    with trio.fail_after(LIMIT):
        result = await place_call(sim.addresses[0], "1000", "4861234", hold=1.0)
    assert (result.outcome, result.final_status, result.final_reason) == (Outcome.REJECTED, 486, "Busy Here")
    assert _lines(result)[-2:] == [("received", "486 Busy Here"), ("sent", "ACK")]
    assert result.hangup_by is None


async def test_reject_answers_its_code_with_retry_after(sim: SimGateway) -> None:
    with trio.fail_after(LIMIT):
        unavailable = await place_call(sim.addresses[0], "1000", "5031", hold=1.0)
        not_found = await place_call(sim.addresses[0], "1000", "4040", hold=1.0)
    assert unavailable.final_status == 503
    final = unavailable.ladder[-2].message
    assert final.retry_after is not None and final.retry_after.seconds == 30
    assert not_found.final_status == 404
    assert not_found.ladder[-2].message.headers.get("Retry-After") is None


async def test_never_answer_rings_until_cancel_then_487(sim: SimGateway) -> None:
    with trio.fail_after(LIMIT):
        result = await place_call(sim.addresses[0], "1000", "0800", cancel_after=0.2)
    assert result.outcome is Outcome.CANCELLED
    assert result.final_status == 487
    lines = _lines(result)
    assert lines[:3] == [("sent", "INVITE"), ("received", "100 Trying"), ("received", "180 Ringing")]
    assert ("sent", "CANCEL") in lines and ("received", "200 OK (CANCEL)") in lines
    assert lines[-2:] == [("received", "487 Request Terminated"), ("sent", "ACK")]
    cancel = next(e for e in result.ladder if e.label == "CANCEL")
    assert cancel.at >= 0.2


async def test_the_callee_hangs_up_after_its_hold(sim: SimGateway) -> None:
    with trio.fail_after(LIMIT):
        result = await place_call(sim.addresses[0], "1000", "7700", hold=5.0)
    assert result.outcome is Outcome.ANSWERED
    assert result.hangup_by == "callee"
    assert _lines(result)[-2:] == [("received", "BYE"), ("sent", "200 OK (BYE)")]
    assert result.ladder[-1].at < 5.0  # long before the caller's own hold ran out


async def test_drop_closes_the_connection_and_the_call_reports_a_transport_error(sim: SimGateway) -> None:
    with trio.fail_after(LIMIT):
        result = await place_call(sim.addresses[0], "1000", "9999", hold=1.0)
    assert result.outcome is Outcome.TRANSPORT_ERROR
    assert result.final_status is None
    assert result.error is not None and "connection" in result.error
    assert _lines(result) == [("sent", "INVITE")]


async def test_a_dropped_connection_ends_only_that_connection(sim: SimGateway) -> None:
    with trio.fail_after(LIMIT):
        dropped = await place_call(sim.addresses[0], "1000", "9999")
        after = await place_call(sim.addresses[0], "1000", "2000", hold=0.0)
    assert dropped.outcome is Outcome.TRANSPORT_ERROR
    assert after.outcome is Outcome.ANSWERED


async def test_concurrent_calls_share_one_connection_by_call_id(sim: SimGateway) -> None:
    results: list[CallResult] = []
    with trio.fail_after(LIMIT):
        async with open_uac(sim.addresses[0]) as uac:

            async def one(callee: str) -> None:
                results.append(await uac.call("1000", callee, hold=0.05))

            async with trio.open_nursery() as nursery:
                for callee in ["2000", "4860", "2001", "5030"]:
                    nursery.start_soon(one, callee)
    assert sorted(r.final_status or 0 for r in results) == [200, 200, 486, 503]
    assert len({r.call_id for r in results}) == 4


async def test_a_request_for_no_call_gets_481() -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], BEHAVIOURS, name="gw481")
        stream = await trio.open_tcp_stream(*sim.addresses[0])
        bye = (
            "BYE sip:2000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx1\r\n"
            "From: <sip:1000@127.0.0.1>;tag=a\r\nTo: <sip:2000@127.0.0.1>;tag=b\r\nCall-ID: nope\r\n"
            "CSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        with trio.fail_after(LIMIT):
            await stream.send_all(bye.encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(4096)
        assert data.startswith(b"SIP/2.0 481 ")
        assert b"Content-Length: 0" in data
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_place_call_to_a_closed_port_raises_a_transport_error() -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    with pytest.raises(SimTransportError, match=f"cannot connect to 127.0.0.1:{port}"):
        await place_call(("127.0.0.1", port), "1000", "2000")


async def test_a_port_in_use_cannot_be_listened_on() -> None:
    async with trio.open_nursery() as nursery:
        first = await start_sim(nursery, ["127.0.0.1:0"], BEHAVIOURS, name="a")
        with pytest.raises(SimTransportError, match="cannot listen on"):
            await start_sim(nursery, [first.addresses[0]], BEHAVIOURS, name="b")
        nursery.cancel_scope.cancel()


async def test_the_simulator_is_a_tree_of_calls_connections_and_listener() -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], BEHAVIOURS, name="tree")
        assert whereis("tree") == sim.pid
        assert [c.id for c in await which_children(sim.pid)] == ["calls", "connections", "listener"]
        nursery.cancel_scope.cancel()


async def test_a_number_that_cannot_be_a_sip_user_is_refused_before_anything_is_sent(sim: SimGateway) -> None:
    with trio.fail_after(LIMIT):
        async with open_uac(sim.addresses[0]) as uac:
            with pytest.raises(AddressError, match="cannot call '2000' as 'a b': caller 'a b' is not a SIP user") as info:
                await uac.call("a b", "2000")
            assert "make_request" not in str(info.value)
            assert (await uac.call("1000", "2000", hold=0.0)).answered  # the connection is still fine
