"""The Reloader: a GenServer that runs a node's reloads one at a time, on SIGHUP or when called.

What a reload does is handed in as a function (`ReloadFn`: re-read routes and rates, validate,
swap them in — `switchd.app.reload_config` for a switchd node), so this module knows nothing of
configuration files. The server serialises reloads: a SIGHUP and a `reload()` call that arrive
together run one after the other, each on a consistent state. A SIGHUP is turned into a cast by
a small task that lives and dies with the server (signals can only be received in the main
thread; elsewhere, e.g. in a test's worker thread, only `reload()` reloads).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from switchd.otp import Caller, ChildSpec, GenServer, NoReply, OTPError, Pid, Reply, call, cast

log = logging.getLogger(__name__)

NAME = "reloader"
"""The name the Reloader registers under and `reload()` calls."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: `ok` False means nothing changed and `error` says why."""

    ok: bool
    routes: int = 0
    rates: int | None = None  # tariffs loaded; None: no rate deck configured
    gateways: tuple[str, ...] = ()  # gateway links started or replaced, registrations started, renewed or stopped
    error: str | None = None
    accounts: int | None = None  # accounts read again; None: they could not be (logged; the old ones stay)


ReloadFn = Callable[[], Awaitable[ReloadResult]]
"""Does one reload and says what it did; never raises for a bad file (an `ok=False` result)."""


@dataclass(frozen=True, slots=True)
class _Reload:
    pass


@dataclass(frozen=True, slots=True)
class _Hangup:
    pass


class Reloader(GenServer[ReloadFn]):
    """Runs `ReloadFn` for each `reload()` call (answering its result) and each SIGHUP."""

    @classmethod
    async def start_link(cls, *args: Any, name: str | None = NAME,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the server (``args``: the ReloadFn) and, in the main thread, its SIGHUP listener.

        A crash raises the server's own exception, unwrapped, as any GenServer's.
        """
        try:
            async with trio.open_nursery() as nursery:
                pid: Pid = await nursery.start(partial(_serve, cls, args, name, nursery.cancel_scope))
                if _signals_available():
                    nursery.start_soon(_forward_hangups, pid)
                task_status.started(pid)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:  # the server's exit; the listener was only cancelled
                raise group.exceptions[0] from None
            raise

    async def init(self, reload_fn: ReloadFn) -> ReloadFn:
        return reload_fn

    async def handle_call(self, request: object, caller: Caller, reload_fn: ReloadFn) -> Reply[ReloadFn]:
        if isinstance(request, _Reload):
            return Reply(await reload_fn(), reload_fn)
        raise ValueError(f"reloader: unknown request {request!r}")

    async def handle_cast(self, request: object, reload_fn: ReloadFn) -> NoReply[ReloadFn]:
        if isinstance(request, _Hangup):
            log.info("SIGHUP: reloading routes and rates")
            await reload_fn()
            return NoReply(reload_fn)
        raise ValueError(f"reloader: unknown cast {request!r}")

    def format_status(self, state: ReloadFn) -> str:
        return "waiting for SIGHUP or reload()"


async def _serve(cls: type[Reloader], args: tuple[Any, ...], name: str | None, listener: trio.CancelScope,
                 task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
    """The server itself; when it exits, however, the SIGHUP listener goes with it."""
    try:
        await super(Reloader, cls).start_link(*args, name=name, task_status=task_status)
    finally:
        listener.cancel()


async def _forward_hangups(server: Pid) -> None:
    with trio.open_signal_receiver(signal.SIGHUP) as hangups:
        async for _ in hangups:
            try:
                cast(server, _Hangup())
            except OTPError:  # the server is gone: the nursery is being torn down with it
                return


def _signals_available() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP")


async def reload(*, reloader: Pid | str = NAME, timeout: float = 60.0) -> ReloadResult:
    """Reload routes and rates in the running node (what SIGHUP does); for the CLI and the API."""
    result: ReloadResult = await call(reloader, _Reload(), timeout=timeout)
    return result


def reloader_child_spec(reload_fn: ReloadFn, *, name: str = NAME) -> ChildSpec:
    """The supervisor child spec of the Reloader running `reload_fn`, registered as `name`."""
    return ChildSpec(id=name, start=partial(Reloader.start_link, reload_fn, name=name), shutdown=1.0)
