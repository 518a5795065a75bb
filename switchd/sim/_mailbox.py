"""Waiting for the next message of a call process until a deadline (trio time), or None at it."""

from __future__ import annotations

import trio

from switchd.otp import ReceiveTimeout, receive


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
