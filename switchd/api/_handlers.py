"""The process that keeps the API's event handlers on the node's EventManager, across its restarts.

An EventManager's handlers die with it: when "events" crashes and its supervisor starts a new
one, the new one has none. Erlang's answer is a supervised process that added them with
``add_sup_handler`` and adds them again when told; here ``api.handlers`` monitors "events", and
on its ``Down`` waits for the name to be registered again and re-adds `MetricsHandler` and
`TraceHandler`. While "events" is away the call events are lost to the metrics (the calls go
on: sessions drop events when no manager is registered), which `switchd_process_restarts_total`
shows.

The registry has no "name registered" notice, so the wait for the new manager is a bounded
back-off (10 ms doubling to 0.5 s): a supervisor restarts a child within one of its steps, so
the first retry normally finds it. When ``api.handlers`` stops (the API stopping) it removes its
handlers, so no trace is kept — and no connection pays for one — without the API.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from switchd.otp import (
    Down,
    EventHandler,
    MonitorRef,
    OTPError,
    Pid,
    add_handler,
    delete_handler,
    monitor,
    receive,
    whereis,
    which_handlers,
)

log = logging.getLogger(__name__)

EVENTS = "events"
PAUSE_MIN, PAUSE_MAX = 0.01, 0.5


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A handler to keep on the EventManager: `handler_id`, its class, and the `arg` of its init."""

    handler_id: str
    handler: type[EventHandler[Any]]
    arg: Any


async def wait_for_name(name: str, *, other_than: Pid | None = None, timeout: float = 5.0) -> Pid | None:
    """The pid registered as `name` (other than `other_than`), waiting up to `timeout`; None if none came."""
    pause = PAUSE_MIN
    with trio.move_on_after(timeout):
        while True:
            pid = whereis(name)
            if pid is not None and pid != other_than:
                return pid
            await trio.sleep(pause)
            pause = min(PAUSE_MAX, pause * 2)
    return None


async def keep_handlers(specs: Sequence[HandlerSpec], events: str = EVENTS) -> None:
    """The ``api.handlers`` process (see the module docstring); runs until stopped."""
    manager: Pid | None = None
    try:
        while True:
            manager = await wait_for_name(events, other_than=manager, timeout=float("inf"))
            assert manager is not None  # an infinite wait returns only with a pid
            ref = monitor(manager)
            try:
                await _add_all(manager, specs)
            except OTPError as exc:  # the new manager died under us: wait for the next one
                log.warning("api.handlers: cannot add the handlers to %s: %s", events, exc)
            await receive(match=partial(_is_down, ref))
            log.info("api.handlers: %s exited; adding the handlers to its successor", events)
    finally:
        with trio.move_on_after(1.0, shield=True):
            await _remove_all(events, specs)


def _is_down(ref: MonitorRef, msg: object) -> bool:
    return isinstance(msg, Down) and msg.ref is ref


async def _add_all(manager: Pid, specs: Sequence[HandlerSpec]) -> None:
    present = set(await which_handlers(manager))
    for spec in specs:
        if spec.handler_id not in present:
            await add_handler(manager, spec.handler_id, spec.handler, spec.arg)


async def _remove_all(events: str, specs: Sequence[HandlerSpec]) -> None:
    manager = whereis(events)
    if manager is None:
        return
    for spec in specs:
        try:
            await delete_handler(manager, spec.handler_id, timeout=0.5)
        except OTPError as exc:  # not there (the manager is new), or it is stopping itself
            log.debug("api.handlers: %s not removed: %s", spec.handler_id, exc)
