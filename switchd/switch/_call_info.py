"""Calls seen from outside their sessions: what each is doing now, and ending one (for the API).

`list_calls` and `call_info` read a session's state the way Erlang's observer does, with
``sys:get_state`` (`switchd.otp.get_state`): one system message per session, answered between
two of its events, so what comes back is consistent. The state is turned into a frozen
`CallInfo` at once, in the caller: nothing keeps a reference into a live session. A session
that ends meanwhile is simply left out. `hangup_call` sends a session the `Hangup` message;
`a_leg_of` finds the call a B-leg Call-ID belongs to (for the SIP trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import trio

from switchd.billing import HangupParty
from switchd.otp import (
    NoProcess,
    OTPError,
    Pid,
    get_state,
    members,
    process_info,
    send,
    whereis,
    which_children,
)

from ._call_legs import BLeg, CallData
from ._call_session import CallState
from ._leg_state import LegState
from ._wire import Hangup, a_leg_name, b_leg_key

CALLS = "calls"


@dataclass(frozen=True, slots=True)
class LegInfo:
    """One B-leg attempt: `state` is calling, ringing, answered, ended (BYE sent or received),
    cancelled or failed; `final` its final status (0: none came — a timeout or a lost connection)."""

    call_id: str
    gateway: str
    attempt: int
    state: str
    final: int | None


@dataclass(frozen=True, slots=True)
class CallInfo:
    """One call in flight, as its session holds it now.

    `duration` is seconds since the INVITE came in; `billable` seconds since the caller was sent
    the answer (0.0 before). `gateway` is the current B-leg's.
    """

    call_id: str
    state: CallState
    caller: str
    callee: str
    gateway: str | None
    started_at: datetime
    answered_at: datetime | None
    duration: float
    billable: float
    pid: Pid
    legs: tuple[LegInfo, ...]


_SHOWN = {
    LegState.INVITING: "calling", LegState.EARLY: "ringing", LegState.CANCEL_PENDING: "cancelled",
    LegState.CANCELLING: "cancelled", LegState.HUNG_UP: "ended",
}


def _leg_state(leg: BLeg) -> str:
    if leg.state is LegState.ENDED:
        return "cancelled" if leg.final == 487 else "failed"
    return _SHOWN.get(leg.state, "answered")  # answered, up, or an offer in progress on it


def _final(leg: BLeg) -> int | None:
    return 0 if leg.final is None and leg.state is LegState.ENDED else leg.final


def _info(pid: Pid, state: CallState, data: CallData) -> CallInfo:
    now = trio.current_time()
    answered = data.answered_at
    legs = tuple(LegInfo(leg.call_id, leg.gateway, leg.attempt, _leg_state(leg), _final(leg))
                 for leg in data.legs.values())
    return CallInfo(
        call_id=data.call_id, state=state, caller=data.caller, callee=data.callee,
        gateway=data.b.gateway if data.b is not None else None,
        started_at=data.clock.at(data.received_at),
        answered_at=None if answered is None else data.clock.at(answered),
        duration=now - data.received_at, billable=0.0 if answered is None else now - answered,
        pid=pid, legs=legs,
    )


async def _read(pid: Pid, timeout: float) -> CallInfo | None:
    try:
        state = await get_state(pid, timeout=timeout)
    except OTPError:  # it ended meanwhile, or is too busy to answer: not listed
        return None
    if not (isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], CallData)):
        return None  # not a call session (a test's stand-in under "calls")
    return _info(pid, state[0], state[1])


async def call_info(call_id: str, *, timeout: float = 1.0) -> CallInfo | None:
    """The call whose caller's Call-ID is `call_id`, or None when no such call is in flight."""
    pid = whereis(a_leg_name(call_id))
    return None if pid is None else await _read(pid, timeout)


async def list_calls(*, limit: int = 100, calls: str = CALLS, timeout: float = 1.0) -> tuple[int, list[CallInfo]]:
    """(calls in flight, the first `limit` of them in start order), each read within `timeout`.

    The sessions are asked all at once, so a listing takes at most `timeout` whatever the count.
    Raises NoProcess when the `calls` supervisor is not running.
    """
    children = [c.pid for c in await which_children(calls) if c.pid is not None]
    found: list[CallInfo | None] = [None] * min(limit, len(children))

    async def read(index: int, pid: Pid) -> None:
        found[index] = await _read(pid, timeout)

    async with trio.open_nursery() as nursery:
        for index, pid in enumerate(children[: len(found)]):
            nursery.start_soon(read, index, pid)
    return len(children), [info for info in found if info is not None]


def a_leg_of(b_call_id: str) -> str | None:
    """The caller's Call-ID of the call whose session placed the B-leg `b_call_id`; None if it is gone."""
    prefix = a_leg_name("")
    for pid in members(b_leg_key(b_call_id)):
        info = process_info(pid)
        if info is not None and info.name is not None and info.name.startswith(prefix):
            return info.name[len(prefix):]
    return None


def hangup_call(call_id: str, *, by: HangupParty = HangupParty.OPERATOR, cause: str = "operator") -> bool:
    """Ask the session of `call_id` to end its call (see `Hangup`); False when no such call is in flight.

    Returns at once: the session BYEs (or cancels) the legs and closes the CDR on its own time.
    """
    try:
        send(a_leg_name(call_id), Hangup(by, cause))
    except NoProcess:
        return False
    return True

