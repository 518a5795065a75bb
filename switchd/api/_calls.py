"""Endpoints about calls in flight: GET/DELETE /calls…, and their SIP ladders: GET /trace/{call_id}."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from functools import partial
from typing import Any

from switchd.otp import Down, OTPError, Pid, monitor, receive, sync_notify, whereis
from switchd.switch import CallInfo, a_leg_name, call_info, hangup_call, list_calls

from ._dispatch import Answer, ApiRequest, Json, Stream
from ._errors import NotFound
from ._json import dumps, time_text
from ._state import ApiState
from ._trace import Follower, TracedMessage

log = logging.getLogger(__name__)

MAX_CALLS = 1000


def _call(info: CallInfo, *, legs: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "call_id": info.call_id, "state": info.state.value, "caller": info.caller, "callee": info.callee,
        "gateway": info.gateway, "started_at": time_text(info.started_at),
        "answered_at": None if info.answered_at is None else time_text(info.answered_at),
        "duration": round(info.duration, 3), "billable": round(info.billable, 3), "pid": str(info.pid),
    }
    if legs:
        out["legs"] = [{"call_id": leg.call_id, "gateway": leg.gateway, "attempt": leg.attempt, "state": leg.state,
                        "final": leg.final} for leg in info.legs]
    return out


async def calls(state: ApiState, request: ApiRequest) -> Answer:
    limit = request.query.integer("limit", 100, low=1, high=MAX_CALLS)
    request.query.done()
    count, found = await list_calls(limit=limit, calls=state.view.calls)
    return Json({"count": count, "calls": [_call(info) for info in found]})


async def _found(call_id: str) -> CallInfo:
    info = await call_info(call_id)
    if info is None:
        raise NotFound(f"no call {call_id!r} in flight")
    return info


async def show_call(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    return Json(_call(await _found(request.params[0]), legs=True))


async def end_call(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    call_id = request.params[0]
    if not hangup_call(call_id):
        raise NotFound(f"no call {call_id!r} in flight")
    return Json({"call_id": call_id, "ending": True}, 202)


def _message(message: TracedMessage) -> dict[str, Any]:
    return {"call_id": message.call_id, "at": time_text(message.at), "direction": message.direction,
            "leg": message.leg, "peer": message.peer, "transport": message.transport, "summary": message.summary,
            "text": message.text}


async def trace(state: ApiState, request: ApiRequest) -> Answer:
    follow = request.query.flag("follow")
    request.query.done()
    call_id = request.params[0]
    buffer = state.trace
    if buffer.calls == 0:
        raise NotFound("the SIP trace is off ([api] trace_calls = 0)")
    if follow:
        return _follow(state, call_id)
    ladder = buffer.ladder(call_id)
    if ladder is None:
        raise NotFound(f"call {call_id!r} is not in the trace (it keeps the last {buffer.calls} calls)")
    return Json({"call_id": call_id, "messages": [_message(m) for m in ladder]})


@dataclass(frozen=True, slots=True)
class _TraceFlush:
    """An event that reaches the handlers after every event sent before it (see `_end_with`)."""


def _follow(state: ApiState, call_id: str) -> Stream:
    """Every message of `call_id` (or of every call for "*") as NDJSON, the kept ones first.

    A single call's stream ends when its session has exited and the events before its exit are
    filed; "*" runs until the client closes. A reader too slow for the trace gets a last line
    ``{"error": {"code": "lagging", …}}``.
    """
    buffer = state.trace
    everything = call_id == "*"
    follower = buffer.follow(None if everything else call_id)
    kept = [] if everything else buffer.ladder(call_id) or []
    session = None if everything else whereis(a_leg_name(call_id))
    if not everything and not kept and session is None:
        follower.finish()
        raise NotFound(f"call {call_id!r} is neither in flight nor in the trace")
    if not everything and session is None:
        follower.finish()  # over already: what is kept is all there is
    watch = None if session is None else partial(_end_with, session, follower, state.view.tap.events)
    return Stream(_lines(kept, follower), watch=watch)


async def _lines(kept: list[TracedMessage], follower: Follower) -> AsyncGenerator[bytes, None]:
    try:
        for message in kept:
            yield dumps(_message(message)) + b"\n"
        async for message in follower.messages:
            yield dumps(_message(message)) + b"\n"
        if follower.lagged:
            yield dumps({"error": {"code": "lagging", "detail": "this reader fell behind the trace; "
                                                                "the rest of the call is in GET /trace"}}) + b"\n"
    finally:
        follower.finish()


async def _end_with(session: Pid, follower: Follower, events: str) -> None:
    """Finish `follower` once `session` has exited and every trace event sent before is filed."""
    ref = monitor(session)
    await receive(match=lambda m: isinstance(m, Down) and m.ref is ref)
    try:
        await sync_notify(events, _TraceFlush(), timeout=2.0)
    except OTPError as exc:  # the EventManager is restarting: what it had queued is lost anyway
        log.debug("trace follow of %s: no flush (%s)", session, exc)
    follower.finish()
