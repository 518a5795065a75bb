"""The SIP trace: the last calls' ladders, kept by an event handler, read by GET /trace/{call_id}.

Where the messages come from: every SIP connection of the node (accepted ones and gateway links:
both legs, in and out) counts its messages in the node's `WireTap`; while `tap.tracing` is on it
also notifies the EventManager "events" with a `SipTracedBatch` of the messages traced since the
last one was taken (see `switchd.switch.WireTap` for what that costs). `TraceHandler` is the handler that switches it on
(in its init) and off (in its terminate) and files each message in a `TraceBuffer`.

How a message finds its call: a message whose Call-ID is a caller's (A-leg) is filed under it; one
whose Call-ID is a B-leg's is filed under the call whose session placed it (`a_leg_of`: the
session is a member of that B-leg's registry key), remembered from its first message (the
INVITE we send) so the last answers still find it after the session exited. A new call starts at
the caller's INVITE; anything that belongs to no call (OPTIONS pings, strays) is not kept, so a
flood of them cannot push real calls out.

Bounds: `calls` calls (the oldest is dropped for a new one), `messages` messages each (the
oldest dropped), and `MAX_TEXT` bytes of text per message — so the buffer holds at most
calls × messages × MAX_TEXT bytes of text whatever the peers send.

Following: `follow(call_id)` hands back a `Follower` whose channel gets every message filed from
then on (of one call, or of all with None). A follower that falls `follow_queue` messages behind
is dropped (its channel is closed, `lagged` set): the trace never waits for a slow reader.

Strategy: a node-local object, like the switch's `Admission`: written by the handler in the
EventManager's process, read by the API's connection processes, never with an await in between.
It outlives restarts of the EventManager and of the API.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import trio

from switchd.otp import EventHandler, ExitReason, whereis
from switchd.switch import SipTraced, SipTracedBatch, WireTap, a_leg_name, a_leg_of

MAX_TEXT = 8 * 1024
"""Bytes of a message's text the trace keeps; the rest is cut, and the cut says how much."""

Leg = Literal["a", "b"]


@dataclass(frozen=True, slots=True)
class TracedMessage:
    """One message of a call's ladder; `call_id` is the caller's, `leg` says which dialog it is on."""

    call_id: str
    at: datetime
    direction: Literal["in", "out"]
    leg: Leg
    peer: str
    transport: str
    summary: str  # "INVITE sip:…" or "180 Ringing"
    text: str


@dataclass(slots=True, eq=False)
class _Call:
    messages: deque[TracedMessage]
    b_legs: list[str] = field(default_factory=list)


class Follower:
    """One live reader of the trace: `messages` gets each message filed from its start.

    The trace closes it when the reader falls `follow_queue` messages behind (`lagged` is then
    True); `finish()` ends it from the reader's side (what is queued can still be read).
    """

    def __init__(self, buffer: TraceBuffer, call_id: str | None, size: int) -> None:
        self.call_id = call_id
        self._buffer = buffer
        self._send, self.messages = trio.open_memory_channel[TracedMessage](size)
        self.lagged = False

    def offer(self, message: TracedMessage) -> None:
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            self.lagged = True
            self.finish()
        except trio.BrokenResourceError:  # the reader is gone
            self.finish()

    def finish(self) -> None:
        """No more messages: the reader sees the end once it has read what is queued."""
        self._buffer._unfollow(self)
        self._send.close()


def _text(data: bytes) -> str:
    text = data[:MAX_TEXT].decode("utf-8", errors="replace")
    return text if len(data) <= MAX_TEXT else f"{text}\n[... {len(data) - MAX_TEXT} more bytes not kept]"


class TraceBuffer:
    """The last `calls` calls' messages, `messages` each (see the module docstring)."""

    def __init__(self, calls: int, messages: int, *, follow_queue: int = 1000) -> None:
        if calls < 0 or messages < 1 or follow_queue < 1:
            raise ValueError(f"TraceBuffer: calls {calls} >= 0, messages {messages} >= 1, "
                             f"follow_queue {follow_queue} >= 1 needed")
        self.calls = calls
        self.messages = messages
        self.follow_queue = follow_queue
        self._calls: OrderedDict[str, _Call] = OrderedDict()
        self._b_legs: dict[str, str] = {}  # B-leg Call-ID -> the caller's
        self._followers: list[Follower] = []

    def record(self, traced: SipTraced) -> TracedMessage | None:
        """File `traced` under its call and hand it to the followers; None when it belongs to no call."""
        owner = self._owner(traced)
        if owner is None:
            return None
        call_id, leg = owner
        entry = TracedMessage(call_id, traced.at, traced.direction, leg, traced.peer, traced.transport,
                              traced.summary, _text(traced.text))
        self._calls[call_id].messages.append(entry)
        for follower in list(self._followers):
            if follower.call_id is None or follower.call_id == call_id:
                follower.offer(entry)
        return entry

    def ladder(self, call_id: str) -> list[TracedMessage] | None:
        """The messages kept of `call_id` (the caller's Call-ID), oldest first; None if not kept."""
        call = self._calls.get(call_id)
        return None if call is None else list(call.messages)

    def follow(self, call_id: str | None) -> Follower:
        """A Follower of every message filed from now on (of `call_id`, or of every call with None).

        `finish()` it when done.
        """
        follower = Follower(self, call_id, self.follow_queue)
        self._followers.append(follower)
        return follower

    @property
    def followers(self) -> int:
        """How many follow now."""
        return len(self._followers)

    def _unfollow(self, follower: Follower) -> None:
        if follower in self._followers:
            self._followers.remove(follower)

    def _owner(self, traced: SipTraced) -> tuple[str, Leg] | None:
        call_id = traced.call_id
        if call_id is None:  # an edge answer to a request whose Call-ID was not fit to copy: no call's
            return None
        a_leg = self._b_legs.get(call_id)
        if a_leg is not None:
            return a_leg, "b"
        if call_id in self._calls:
            return call_id, "a"
        if self.calls == 0:
            return None
        a_leg = a_leg_of(call_id)
        if a_leg is not None:
            call = self._calls.get(a_leg) or self._new_call(a_leg)
            call.b_legs.append(call_id)
            self._b_legs[call_id] = a_leg
            return a_leg, "b"
        if traced.starts_call or whereis(a_leg_name(call_id)) is not None:
            self._new_call(call_id)
            return call_id, "a"
        return None

    def _new_call(self, call_id: str) -> _Call:
        while len(self._calls) >= self.calls:
            _, oldest = self._calls.popitem(last=False)
            for b_leg in oldest.b_legs:
                self._b_legs.pop(b_leg, None)
        call = self._calls[call_id] = _Call(deque(maxlen=self.messages))
        return call


@dataclass(frozen=True, slots=True)
class TraceSetup:
    """The argument of TraceHandler: where to file, and whose tracing to switch on."""

    buffer: TraceBuffer
    tap: WireTap


class TraceHandler(EventHandler[TraceSetup]):
    """Files every traced message (a `SipTracedBatch`'s, or a lone `SipTraced`) in the buffer; switches
    the tap's tracing on while installed."""

    async def init(self, arg: Any) -> TraceSetup:
        if not isinstance(arg, TraceSetup):
            raise TypeError(f"TraceHandler needs a TraceSetup, not {arg!r}")
        arg.tap.tracing = True
        return arg

    async def handle_event(self, event: Any, state: TraceSetup) -> TraceSetup:
        kind = type(event)
        if kind is SipTracedBatch:
            record = state.buffer.record
            for traced in event.take():
                record(traced)
        elif kind is SipTraced:
            state.buffer.record(event)
        return state

    async def terminate(self, reason: ExitReason, state: TraceSetup) -> None:
        state.tap.tracing = False
