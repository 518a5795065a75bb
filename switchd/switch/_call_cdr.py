"""How a CallSession reaches the BillingStore and the Router: by name, at each use, retried once.

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
    answer_cdr,
    close_cdr,
    open_cdr,
    progress_cdr,
)
from switchd.otp import NoProcess, OTPError, ServerExited

from ._call_legs import CallSettings

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
