"""How a CallSession reaches the BillingStore and the Router: by name, at each use, retried once;
and the CDR steps of one call.

A server that is restarting under its supervisor is briefly unregistered (NoProcess) or exits
under a pending call (ServerExited). Both are worth exactly one retry after `retry_delay`: the
supervisor restarts at once, so the retry finds the new server. Anything else — a second failure,
a timeout, a billing error — is logged and reported to the session as a failure, never raised:
a billing or routing problem must not end the call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from switchd.billing import (
    BillingError,
    CdrAnswer,
    CdrClose,
    CdrOpen,
    CdrProgress,
    Disposition,
    HangupParty,
    answer_cdr,
    close_cdr,
    open_cdr,
    progress_cdr,
)
from switchd.otp import NoProcess, OTPError, ServerExited

from ._call_events import CallEnded, emit
from ._call_legs import CallData, CallSettings, leg_fields

log = logging.getLogger(__name__)

T = TypeVar("T")

CdrStep = CdrOpen | CdrProgress | CdrAnswer | CdrClose


async def retry_once(what: str, call_id: str, delay: float, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()`, and once more after `delay` if its server was restarting (NoProcess, ServerExited)."""
    try:
        return await attempt()
    except (NoProcess, ServerExited) as exc:
        log.warning("%s: %s; retrying once in %gs", what, exc, delay, extra={"call_id": call_id})
    await trio.sleep(delay)  # one bounded back-off while the supervisor restarts the server
    return await attempt()


async def record(settings: CallSettings, step: CdrStep) -> bool:
    """Send one CDR step to the BillingStore; True once it is committed (or spooled), False if not."""
    what = f"CDR {type(step).__name__}"

    async def attempt() -> None:
        server, timeout = settings.billing, settings.billing_timeout
        match step:
            case CdrOpen():
                await open_cdr(step, server=server, timeout=timeout)
            case CdrProgress():
                await progress_cdr(step, server=server, timeout=timeout)
            case CdrAnswer():
                await answer_cdr(step, server=server, timeout=timeout)
            case CdrClose():
                await close_cdr(step, server=server, timeout=timeout)

    try:
        await retry_once(what, step.call_id, settings.retry_delay, attempt)
    except (BillingError, OTPError) as exc:  # a second restart, a timeout, a store that cannot write
        log.error("%s not recorded: %s", what, exc, extra={"call_id": step.call_id})
        return False
    return True


# -- the steps of one call's CDR ----------------------------------------------------------------


async def open_call(data: CallData) -> None:
    """Open the call's CDR (INVITE accepted); `data.cdr_opened` says whether it landed."""
    data.cdr_opened = await record(data.settings, CdrOpen(
        call_id=data.call_id, caller=data.caller, callee=data.callee,
        setup_at=data.clock.at(data.received_at), a_from_tag=data.invite.from_.tag, a_to_tag=data.a_tag))


async def record_step(data: CallData, step: CdrProgress | CdrAnswer | CdrClose) -> None:
    """A later CDR step; the open is tried again first if it never landed."""
    if not data.cdr_opened:
        await open_call(data)
        if not data.cdr_opened:
            return
    await record(data.settings, step)


async def close_call(data: CallData, disposition: Disposition, sip_code: int, sip_reason: str,
                     hangup_by: HangupParty, cause: str) -> None:
    """The call is over: emit CallEnded and close the CDR, once (later calls do nothing)."""
    if data.ended:
        return
    data.ended = True
    end = trio.current_time()
    answered = data.answered_at
    log.info("call ended: %s, %d, by %s (%s)", disposition.value, sip_code, hangup_by.value, cause,
             extra={"call_id": data.call_id})
    emit(data.settings.events, CallEnded(
        data.call_id, data.clock.at(end), disposition, sip_code, hangup_by, cause,
        0.0 if answered is None else end - answered, data.b.gateway if data.b is not None else None))
    await record_step(data, CdrClose(
        call_id=data.call_id, end_at=data.clock.at(end), disposition=disposition, sip_code=sip_code,
        sip_reason=sip_reason, hangup_cause=cause, hangup_by=hangup_by,
        answer_at=None if answered is None else data.clock.at(answered), **leg_fields(data)))
