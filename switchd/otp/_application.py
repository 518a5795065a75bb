"""Application: a name, a root supervisor's children and flags, config, and a prep_stop hook.

``run(app)`` (or ``await run_async(app)`` inside trio) starts the root supervisor, registered under
the application's name, and waits. On SIGINT or SIGTERM it awaits ``prep_stop(app)`` (bounded by
``prep_stop_timeout``; a second signal cuts it short) — switchd drains calls there — and then stops
the tree: children in reverse start order, each within its shutdown timeout.

Exit codes: 0 after a clean stop (signal, or ``stop(app.name)``); 1 when the root supervisor gave
up (or crashed) or prep_stop raised; 2 when the tree failed to start.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from ._child_spec import ChildSpec, SupervisorFlags
from ._errors import NoProcess, SupervisorGaveUp
from ._pid import Pid
from ._supervisor import Supervisor
from ._sys import stop

log = logging.getLogger("switchd.otp")

EXIT_OK = 0
EXIT_GAVE_UP = 1
EXIT_START_FAILED = 2


@dataclass(frozen=True, slots=True)
class Application:
    """An OTP application: its root supervisor's spec, config, and stop hook.

    ``name``: the application's name; the root supervisor is registered under it.
    ``children``: the root supervisor's child specs, started in order.
    ``flags``: the root supervisor's strategy and restart intensity, SupervisorFlags().
    ``prep_stop``: awaited with the application on SIGINT/SIGTERM before the tree stops, None.
    ``config``: anything the children need (they usually close over it), None.
    ``prep_stop_timeout``: seconds prep_stop may take before the tree stops anyway, 30.0.
    """

    name: str
    children: Sequence[ChildSpec]
    flags: SupervisorFlags = field(default_factory=SupervisorFlags)
    prep_stop: Callable[[Application], Awaitable[None]] | None = None
    config: Any = None
    prep_stop_timeout: float = 30.0


async def run_async(app: Application, *,
                    task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> int:
    """Run `app` until SIGINT/SIGTERM or until its root supervisor exits; returns the exit code.

    ``task_status.started(root_pid)`` once the whole tree has started. Must run in the main thread
    (it installs the signal handlers for its lifetime).
    """
    code = EXIT_OK
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            async with trio.open_nursery() as nursery:
                try:
                    root = await nursery.start(_run_root, app, nursery.cancel_scope)
                except Exception as exc:
                    log.error("application %s failed to start: %r", app.name, exc, exc_info=exc,
                              extra={"application": app.name})
                    return EXIT_START_FAILED
                log.info("application %s started (%s)", app.name, root, extra={"application": app.name})
                task_status.started(root)
                code = await _stop_on_signal(app, signals)
        except* SupervisorGaveUp as group:
            log.error("application %s stopped: %s", app.name, group.exceptions[0],
                      extra={"application": app.name})
            code = EXIT_GAVE_UP
        except* Exception as group:
            log.error("application %s crashed: %r", app.name, group.exceptions[0],
                      exc_info=group.exceptions[0], extra={"application": app.name})
            code = EXIT_GAVE_UP
    log.info("application %s stopped, exit code %d", app.name, code,
             extra={"application": app.name, "exit_code": code})
    return code


async def _run_root(app: Application, scope: trio.CancelScope,
                    task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
    await Supervisor.start_link(app.children, app.flags, name=app.name, task_status=task_status)
    scope.cancel(reason=f"application {app.name}: the root supervisor exited")  # stopped: we are done


async def _stop_on_signal(app: Application, signals: Any) -> int:
    async for signum in signals:
        log.info("application %s: %s received, stopping", app.name, signal.Signals(signum).name,
                 extra={"application": app.name})
        break
    code = EXIT_OK
    if app.prep_stop is not None:
        with trio.move_on_after(app.prep_stop_timeout) as deadline:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cut_short_on_signal, signals, deadline)
                try:
                    await app.prep_stop(app)
                except Exception as exc:
                    log.error("application %s: prep_stop raised %r", app.name, exc, exc_info=exc,
                              extra={"application": app.name})
                    code = EXIT_GAVE_UP
                nursery.cancel_scope.cancel()
        if deadline.cancelled_caught:
            log.warning("application %s: prep_stop cut short", app.name, extra={"application": app.name})
    try:
        await stop(app.name, "shutdown", timeout=math.inf)
    except NoProcess:
        pass  # the root exited on its own meanwhile; its exit decides the outcome
    return code


async def _cut_short_on_signal(signals: Any, deadline: trio.CancelScope) -> None:
    async for _ in signals:
        deadline.cancel(reason="second stop signal")
        return


def run(app: Application) -> int:
    """Run `app` in a new trio loop until it stops; returns the process exit code (see module doc)."""
    return trio.run(partial(run_async, app))
