"""WireTap: a connection counts what it reads and writes, and traces it only while tracing is on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
import trio.testing

from switchd import otp
from switchd.otp import Pid, send
from switchd.sip import Request, make_response
from switchd.switch import (
    ConnectionSettings,
    Outbound,
    SipConnection,
    SipTraced,
    SipTracedBatch,
    WireTap,
    method_label,
)

from ._call_harness import EventRecorder
from .transport_helpers import Peer, Recorder, request, response


@asynccontextmanager
async def tapped() -> AsyncIterator[tuple[Peer, Recorder, Pid, WireTap, list[Any]]]:
    """A connection process over a memory stream, with its own tap and an EventManager "events"."""
    ours, theirs = trio.testing.memory_stream_pair()
    tap = WireTap()
    traced: list[Any] = []
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(otp.EventManager.start_link, name="events"))
        await otp.add_handler("events", "traced", EventRecorder, traced)
        pid: Pid = await nursery.start(partial(SipConnection.start_link, ours, ConnectionSettings(tap=tap), recorder))
        yield Peer(theirs), recorder, pid, tap, traced
        nursery.cancel_scope.cancel()


async def test_messages_read_and_written_are_counted_by_method_and_status() -> None:
    async with tapped() as (peer, recorder, pid, tap, traced):
        await peer.send(request("INVITE") + request("BYE", call_id="c2") + response(180) + request("FOO"))
        [invite, *_] = await recorder.wait_for(4)
        assert isinstance(invite, Request)
        send(pid, Outbound(make_response(invite, 100)))
        send(pid, Outbound(make_response(invite, 486)))
        await peer.read()
        await peer.read()
        assert tap.requests_in == {"INVITE": 1, "BYE": 1, "other": 1}
        assert tap.responses_in == {180: 1}
        assert tap.responses_out == {100: 1, 486: 1}
        await otp.sync_notify("events", "flush")
        assert traced == ["flush"]  # tracing is off: nothing went to the events


async def test_a_message_the_edge_refuses_is_counted_by_the_status_it_answers() -> None:
    async with tapped() as (peer, _, _pid, tap, _traced):
        await peer.send(request("INVITE", extra="CSeq: 2 INVITE\r\n"))  # two CSeq values: 400
        answer = await peer.read()
        assert answer.status == 400  # type: ignore[union-attr]
        assert tap.parse_errors == {400: 1}
        assert tap.responses_out == {400: 1}  # the answer is a message out like any other
        assert tap.requests_in == {}  # what failed to parse is not counted as a request


async def test_while_tracing_every_message_in_and_out_goes_to_the_events_with_its_text_and_peer() -> None:
    async with tapped() as (peer, recorder, pid, tap, traced):
        tap.tracing = True
        await peer.send(request("INVITE", call_id="traced-1"))
        [invite] = await recorder.wait_for(1)
        assert isinstance(invite, Request)
        send(pid, Outbound(make_response(invite, 180)))
        await peer.read()
        await otp.sync_notify("events", "flush")
        assert traced[-1] == "flush" and all(isinstance(batch, SipTracedBatch) for batch in traced[:-1])
        inbound, outbound = [message for batch in traced[:-1] for message in batch.take()]
        assert isinstance(inbound, SipTraced) and isinstance(outbound, SipTraced)
        assert (inbound.direction, outbound.direction) == ("in", "out")
        assert inbound.message.call_id == outbound.message.call_id == "traced-1"
        assert inbound.text == request("INVITE", call_id="traced-1")  # the bytes read, not written again
        assert outbound.text.startswith(b"SIP/2.0 180 Ringing\r\n")
        assert inbound.peer == outbound.peer == "StapledStream"  # a socket gives host:port
        assert inbound.at <= outbound.at


def test_a_method_switchd_does_not_know_is_labelled_other() -> None:
    assert method_label("INVITE") == "INVITE"
    assert method_label("X-FLOOD-1234") == "other"


async def test_messages_traced_before_the_events_take_them_go_in_one_batch_and_one_notify() -> None:
    async with tapped() as (peer, recorder, pid, tap, traced):
        tap.tracing = True
        await peer.send(request("INVITE", call_id="b-1") + request("INVITE", call_id="b-2"))
        first, second = await recorder.wait_for(2)
        assert isinstance(first, Request) and isinstance(second, Request)
        send(pid, Outbound(make_response(first, 180)))  # in this task: before the events run
        await otp.sync_notify("events", "flush")
        [batch, flush] = traced
        assert isinstance(batch, SipTracedBatch) and flush == "flush"
        messages = batch.take()
        invite = ("in", "INVITE sip:service@127.0.0.1:5060")
        assert [(m.direction, m.summary) for m in messages] == [invite, invite, ("out", "180 Ringing")]
        assert batch.take() is messages  # every handler sees the same list
        assert messages[0].at == messages[1].at <= messages[2].at  # read together: one time
        send(pid, Outbound(make_response(second, 180)))  # after the take: a new batch
        await peer.read()
        await peer.read()
        await otp.sync_notify("events", "flush")
        assert isinstance(traced[2], SipTracedBatch) and [m.summary for m in traced[2].take()] == ["180 Ringing"]
