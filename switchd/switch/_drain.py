"""The drain: how a node stops without cutting calls short (what SIGTERM starts).

`drain_node` sets the node's `Admission` draining (every new INVITE gets 503 with Retry-After),
then `drain_calls` waits for the calls under the calls supervisor to end by themselves, up to a
timeout, and ends the rest — all at once, so their CDR closes share the billing store's batches.
A drain is one process of its own (`Process`): it monitors every call and waits for their
`Down` messages rather than polling the supervisor, and a call that starts while it waits (one
admitted just before the drain began) is watched too.
"""

from __future__ import annotations

import logging
from functools import partial

import trio

from switchd.otp import (
    Down,
    MonitorRef,
    NoProcess,
    NotABehaviour,
    OTPError,
    Pid,
    Process,
    ReceiveTimeout,
    monitor,
    receive,
    stop,
    terminate_child,
    which_children,
)

from ._admission import Admission

log = logging.getLogger(__name__)

CALLS = "calls"
"""The registered name of the node's calls supervisor, which a drain waits on by default."""


async def drain_node(admission: Admission, timeout: float, *, calls: str = CALLS) -> None:
    """Refuse new calls from now on, then `drain_calls`: a node's ``prep_stop`` (SIGTERM)."""
    admission.begin_drain()
    ended = await drain_calls(timeout, calls=calls)
    log.info("drain finished: %d call(s) ended by the switch", ended, extra={"ended": ended})


async def drain_calls(timeout: float, *, calls: str = CALLS, cleanup_timeout: float = 10.0) -> int:
    """Wait up to `timeout` seconds for every call under `calls` to end, then end the rest.

    Calls that start meanwhile are waited for too (admission should be draining already). The
    rest are stopped all at once with reason "shutdown" (their terminate hangs up and closes the
    CDR), each within `cleanup_timeout`. Returns how many calls were ended that way.
    """
    ended: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, partial(_drain, calls, timeout, cleanup_timeout, ended))
    return ended[0] if ended else 0


async def _drain(calls: str, timeout: float, cleanup_timeout: float, ended: list[int]) -> None:
    deadline = trio.current_time() + timeout
    watched: dict[MonitorRef, Pid] = {}
    if await _watch_children(calls, watched):
        log.info("draining %d call(s), up to %gs", len(watched), timeout, extra={"calls": len(watched)})
    while watched:
        try:
            down = await receive(timeout=max(0.0, deadline - trio.current_time()),
                                 match=lambda m: type(m) is Down)
        except ReceiveTimeout:
            break
        assert isinstance(down, Down)
        watched.pop(down.ref, None)
        if not watched:
            await _watch_children(calls, watched)  # calls that started while we waited
    remaining = list(watched.values())
    if remaining:
        log.warning("drain timeout: ending %d call(s) in flight", len(remaining), extra={"calls": len(remaining)})
        async with trio.open_nursery() as nursery:
            for pid in remaining:
                nursery.start_soon(_end_call, calls, pid, cleanup_timeout)
    ended.append(len(remaining))


async def _watch_children(calls: str, watched: dict[MonitorRef, Pid]) -> int:
    try:
        children = await which_children(calls)
    except NoProcess:
        return 0
    for child in children:
        if child.pid is not None:
            watched[monitor(child.pid)] = child.pid
    return len(watched)


async def _end_call(calls: str, pid: Pid, cleanup_timeout: float) -> None:
    try:
        await stop(pid, "shutdown", timeout=cleanup_timeout)
    except NotABehaviour:
        await terminate_child(calls, pid)
    except OTPError as exc:  # it ended by itself meanwhile (NoProcess), or its cleanup overran
        log.debug("ending call %s: %s", pid, exc)
