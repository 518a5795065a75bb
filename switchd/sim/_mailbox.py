"""Waiting for the next message of a call process until a deadline (trio time), or None at it."""

from __future__ import annotations

import logging

import trio

from switchd.otp import Down, Pid, ReceiveTimeout, receive
from switchd.sip import Request, Response

from ._connection import ConnectionLost, Received

log = logging.getLogger(__name__)


class ConnectionGone(Exception):
    """The connection a call runs on went away under it; unwinds the call's steps."""


async def next_sip(conn: Pid, deadline: float | None, call_id: str) -> Request | Response | None:
    """The next SIP message for call `call_id` on connection `conn`, or None at `deadline`.

    Raises ConnectionGone when the connection reports it lost or its process exits (the call
    monitors `conn`). Any other message is logged and skipped.
    """
    while True:
        message = await next_message(deadline)
        match message:
            case None:
                return None
            case Received(sip):
                return sip
            case ConnectionLost(reason):
                raise ConnectionGone(f"connection lost: {reason}")
            case Down(pid=pid) if pid == conn:
                raise ConnectionGone("connection process exited")
            case _:
                log.debug("call %s: ignoring %r", call_id, message, extra={"call_id": call_id})


async def next_message(deadline: float | None) -> object | None:
    """The next message in the current process's mailbox, or None once `deadline` passed."""
    timeout = None if deadline is None else max(0.0, deadline - trio.current_time())
    try:
        return await receive(timeout)
    except ReceiveTimeout:
        return None


def earliest(*deadlines: float | None) -> float | None:
    """The earliest of the given deadlines, ignoring None; None when all are None."""
    present = [d for d in deadlines if d is not None]
    return min(present) if present else None
