"""The CDR steps of one call, handed to the node's CdrQueue; and the one retry of a router lookup.

A call session never waits on billing. Each step (open, progress, answer, close) goes to the node's
`CdrQueue` with the time of its event — `submit` is a plain function that neither blocks nor
fails — and the BillingStore owns its delivery from there (committed, spooled or quarantined; never
dropped). What the session does wait for is narrower, and it waits without blocking its own event
loop: a message that tells the caller more than "100 Trying" is *held* until the step it depends on
is durable (write-ahead, see `_call_send.to_caller`):

* the open: every response to the caller after the 100 Trying (its 18x, the 200) waits until the
  CDR exists, so a caller does not hear progress of a call that a crash could leave without a
  CDR — but at most ``open_wait`` (20 ms): normally the open is committed in a few ms, and during a
  database outage call setup is not made to wait on the spool's fsync (the issue's setup p99 below
  50 ms). A crash within those 20 ms of an outage can lose the CDR of a call that rang; nothing else.
* the answer: the caller's 200 waits, the same way and as long at most, until the answer step is
  durable (`record_answer`), so a call the caller heard answered is never recovered as
  unanswered; billing starts at the callee's 200.
* the close: what tells the caller the call is over — the final answer to its INVITE, the 200 to
  its BYE, our BYE to it — waits until the close is durable (committed, or fsync'd in the spool), so
  a call the caller saw end is billed as it ended even if the node dies the next instant; at most
  ``cdr_timeout`` (5 s), after which it goes with an error logged.

Everything towards the callee (the B-leg INVITE, ACK, CANCEL, BYE) goes out at once. The store
sends `CdrDurable` when the gating step is durable; `_call_send.release_caller` then sends what was
held, in order.

A router that is restarting under its supervisor is briefly unregistered (NoProcess) or exits
under a pending call (ServerExited); a lookup gets exactly one retry after `retry_delay`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from switchd.billing import CdrAnswer, CdrClose, CdrOpen, CdrProgress, Disposition, HangupParty
from switchd.otp import NoProcess, ServerExited, self_pid

from ._call_events import CallEnded, emit
from ._call_legs import CallData, leg_fields

log = logging.getLogger(__name__)

T = TypeVar("T")


async def retry_once(what: str, call_id: str, delay: float, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()`, and once more after `delay` if its server was restarting (NoProcess, ServerExited)."""
    try:
        return await attempt()
    except (NoProcess, ServerExited) as exc:
        log.warning("%s: %s; retrying once in %gs", what, exc, delay, extra={"call_id": call_id})
    await trio.sleep(delay)  # one bounded back-off while the supervisor restarts the server
    return await attempt()


def open_call(data: CallData) -> None:
    """Open the call's CDR (INVITE accepted): the caller hears nothing more until it is durable.

    An authenticated caller's account is the CDR's account, and its rate plan (if it has one) the
    plan the call is rated with.
    """
    account = data.account
    data.cdr_gate = data.settings.cdrs.submit(CdrOpen(
        call_id=data.call_id, caller=data.caller, callee=data.callee,
        setup_at=data.clock.at(data.received_at), a_from_tag=data.invite.from_.tag, a_to_tag=data.a_tag,
        account=None if account is None else account.username,
        rate_plan=None if account is None else account.rate_plan),
        notify=self_pid())
    data.held_for = data.settings.open_wait


def record_answer(data: CallData) -> None:
    """The callee answered: the CDR's answer (billable time starts here), written ahead of the 200.

    The caller's 200 is held until this step is durable (at most ``open_wait``, like the open): a
    node killed after the caller heard the answer must not leave a call that recovery closes as
    unanswered and unbilled.
    """
    assert data.answered_at is not None
    data.cdr_gate = data.settings.cdrs.submit(
        CdrAnswer(call_id=data.call_id, at=data.clock.at(data.answered_at), a_to_tag=data.a_tag, **leg_fields(data)),
        notify=self_pid())
    data.held_for = data.settings.open_wait


def record_step(data: CallData, step: CdrProgress) -> None:
    """A CDR step in the middle of the call; nothing waits for it."""
    data.settings.cdrs.submit(step)


def close_call(data: CallData, disposition: Disposition, sip_code: int, sip_reason: str,
               hangup_by: HangupParty, cause: str) -> None:
    """The call is over: emit CallEnded and close the CDR, once (later calls do nothing).

    Call it BEFORE sending the caller the message that ends the call: that message is then held
    until the close is durable.
    """
    if data.ended:
        return
    data.ended = True
    end = trio.current_time()
    answered = data.answered_at
    if log.isEnabledFor(logging.DEBUG):
        log.debug("call ended: %s, %d, by %s (%s)", disposition.value, sip_code, hangup_by.value, cause,
                  extra={"call_id": data.call_id})
    emit(data.settings.events, CallEnded(
        data.call_id, data.clock.at(end), disposition, sip_code, hangup_by, cause,
        0.0 if answered is None else end - answered, data.b.gateway if data.b is not None else None))
    data.cdr_gate = data.settings.cdrs.submit(CdrClose(
        call_id=data.call_id, end_at=data.clock.at(end), disposition=disposition, sip_code=sip_code,
        sip_reason=sip_reason, hangup_cause=cause, hangup_by=hangup_by,
        answer_at=None if answered is None else data.clock.at(answered), **leg_fields(data),
        reinvites=data.reinvites, hold_ms=round(data.hold.seconds(end) * 1000)),
        notify=self_pid())
    data.held_for = data.settings.cdr_timeout
