"""How a call ends: the caller's final error, the hang-up of an answered call, the CDR's close, and
terminate's clean-up; and the release of what the caller was held back from hearing (`_call_cdr`).

Each ending closes the CDR first and only then sends the caller what ends its call, which is
therefore held until the close is durable (write-ahead); the session then lingers in ENDING while
answers are due. `clean_up` is what `CallSession.terminate` runs, whatever the way out.
"""

from __future__ import annotations

import logging

from switchd.billing import Disposition, HangupParty, disposition_for
from switchd.otp import ExitReason, GenericTimeout, NextState
from switchd.sip import SipError

from ._call_cdr import close_call
from ._call_legs import CallData, CallState, final_response
from ._call_send import (
    answer_caller,
    cancel_leg,
    hang_up_caller,
    hang_up_leg,
    release_caller,
    stop_retransmitting,
)
from ._errors import SwitchError

log = logging.getLogger(__name__)


def reject(data: CallData, status: int, *, hangup_by: HangupParty, cause: str,
           reason: str | None = None, retry_after: str | None = None) -> NextState[CallState, CallData]:
    """Answer the caller's INVITE with a final error and end the call (the answer waits for the close)."""
    response = final_response(data.invite, status, data.a_tag, reason=reason, retry_after=retry_after)
    result = end(data, disposition_for(status), status, response.reason, hangup_by, cause)
    answer_caller(data, response)
    return result


def hang_up(data: CallData, hangup_by: HangupParty, cause: str) -> NextState[CallState, CallData]:
    """End an answered call: BYE whichever legs are still up (the caller's once the close is durable).

    ANSWERED when the caller confirmed the answer with its ACK, else FAILED: one billing rule for
    an answer the caller never confirmed, however the call then ended (docs/billing.md).
    """
    stop_retransmitting(data)
    hang_up_leg(data, data.b)
    disposition = Disposition.ANSWERED if data.confirmed else Disposition.FAILED
    result = end(data, disposition, 200, "OK", hangup_by, cause)
    hang_up_caller(data)
    return result


def end(data: CallData, disposition: Disposition, sip_code: int, sip_reason: str,
        hangup_by: HangupParty, cause: str) -> NextState[CallState, CallData]:
    """Close the CDR and tell the events; the session lingers in ENDING while answers are due.

    Call it before sending the caller what ends its call: that waits for the close (`_call_cdr`).
    """
    close_call(data, disposition, sip_code, sip_reason, hangup_by, cause)
    return NextState(CallState.ENDING, data, [
        GenericTimeout("no_answer", None), GenericTimeout("max_duration", None),
        GenericTimeout("linger", data.settings.timers.timer_b)])


def cdr_durable(data: CallData) -> None:
    """A CDR step is durable: send what was held for it."""
    release_caller(data)


def cdr_overdue(data: CallData) -> None:
    """The step held messages wait for is not durable in time: send them anyway.

    The step is not lost (it stays in the node's CdrQueue until the store has it). For the open
    and the answer that is the design (setup never waits longer than open_wait); for the close the write-ahead
    promise to the caller is broken, which is worth an error in the log.
    """
    level = logging.ERROR if data.ended else logging.DEBUG
    log.log(level, "CDR %s not durable within %gs; %d message(s) to the caller sent anyway",
            "close" if data.ended else "open/answer", data.held_for, len(data.held), extra={"call_id": data.call_id})
    release_caller(data, force=True)


async def clean_up(reason: ExitReason, data: CallData) -> None:
    """terminate's work: close the CDR, then hang up both legs; wait (bounded) for the close."""
    status = 503 if reason == "shutdown" else 500
    if not data.ended:
        cause = reason if isinstance(reason, str) else "crash"
        if data.ist.final_response is not None:
            status = 200 if data.answered_at is not None else data.ist.final_response.status
        # An answer the caller confirmed was a call, whatever ended it (a crash, the shutdown).
        disposition = Disposition.ANSWERED if data.confirmed else Disposition.FAILED
        close_call(data, disposition, status, "session ended", HangupParty.SWITCH, cause)
    try:
        if data.ist.final_response is None:
            answer_caller(data, final_response(data.invite, status, data.a_tag))
        else:
            hang_up_caller(data)
        for leg in data.legs.values():
            if leg.pending:
                cancel_leg(data, leg, at_once=True)  # best effort: we will not be here for its 1xx
            else:
                hang_up_leg(data, leg)
    except (SipError, SwitchError):
        log.exception("hanging up the legs failed", extra={"call_id": data.call_id})
    if data.held:
        await data.settings.cdrs.wait_durable(data.cdr_gate, data.settings.cleanup_timeout / 2)
        release_caller(data, force=True)
