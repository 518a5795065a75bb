"""A supervised child: its record, the start handshake, and the wrapper task it runs in.

The supervisor spawns ``run_child`` with ``start_soon`` and parks on the child's ``_StartStatus``
until the child calls ``task_status.started(pid)`` (or its start fails): ordered, ready-gated
starting as with ``nursery.start``, without the temporary nursery that costs per child.

From ``started(pid)`` on, the wrapper's cancel scope is shielded: only the supervisor stops the
child, by cancelling that scope after setting the child's exit reason ("shutdown", or "killed" for
BRUTAL_KILL). When the child ends, the wrapper turns how it ended into an exit reason — splitting
exception groups as ``except*`` does, never swallowing a ``Cancelled`` that is not its own — and
posts it to the supervisor's mailbox. So a child's crash never reaches the supervisor's nursery.
"""

from __future__ import annotations

from typing import Any

import trio

from ._child_spec import BRUTAL_KILL, ChildSpec, Restart
from ._errors import OTPError
from ._pid import ExitReason, Pid
from ._process import DEFAULT_SHUTDOWN, _Process


class _Child:
    """One child of a supervisor: its spec and its current incarnation."""

    __slots__ = ("done", "finished", "key", "pid", "restart", "restarts", "scope", "spec", "terminating")

    def __init__(self, key: object, spec: ChildSpec, restart: Restart) -> None:
        self.key = key
        self.spec = spec
        self.restart = restart
        self.pid: Pid | None = None
        self.scope: trio.CancelScope | None = None
        self.finished = True            # no wrapper task is running for it
        self.done: trio.Event | None = None  # set when the wrapper ends (made only when awaited)
        self.terminating = False        # the supervisor is stopping it: post no exit message
        self.restarts = 0


class _ChildExit:
    """Posted by the wrapper to its supervisor when a child ended on its own."""

    __slots__ = ("child", "pid", "reason")

    def __init__(self, child: _Child, pid: Pid, reason: ExitReason) -> None:
        self.child = child
        self.pid = pid
        self.reason = reason


class _StartStatus(trio.TaskStatus[Pid]):
    """The child's ``task_status`` and the supervisor's side of the start handshake."""

    __slots__ = ("_abandoned", "_child", "_waiter", "error", "pid")

    def __init__(self, child: _Child) -> None:
        self._child = child
        self.pid: Pid | None = None
        self.error: BaseException | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._abandoned = False

    def started(self, value: Pid | None = None) -> None:
        if not isinstance(value, Pid):
            raise TypeError(f"child {self._child.spec.id!r} must call task_status.started(pid), "
                            f"not started({value!r})")
        if self.pid is not None:
            raise RuntimeError(f"child {self._child.spec.id!r} called task_status.started() twice")
        child = self._child
        self.pid = child.pid = value
        proc = value._proc
        proc.child_id = child.spec.id
        proc.restarts = child.restarts
        shutdown = child.spec.shutdown
        # BRUTAL_KILL skips terminate on shutdown only (exit reason "killed"); after a crash or a
        # Stop, terminate still runs, bounded by the default.
        proc.shutdown_timeout = DEFAULT_SHUTDOWN if shutdown is BRUTAL_KILL else float(shutdown)
        assert child.scope is not None
        if not self._abandoned:
            # From now on only the supervisor stops it. (A supervisor cancelled while waiting
            # abandoned the start: then the child stays exposed to that cancellation.)
            child.scope.shield = True
        self._wake()

    def fail(self, exc: BaseException) -> None:
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._waiter = None
        self._abandoned = True
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait(self) -> Pid:
        """The child's pid once it is ready; raises what its start raised."""
        if self.pid is None and self.error is None:
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        else:
            await trio.lowlevel.checkpoint()
        if self.error is not None:
            raise self.error
        assert self.pid is not None
        return self.pid


async def run_child(child: _Child, status: _StartStatus, supervisor: _Process) -> None:
    """The wrapper task: run the child's start function, then report how the child ended."""
    reason: ExitReason = "normal"
    try:
        with trio.CancelScope() as scope:
            child.scope = scope
            try:
                await child.spec.start(task_status=status)
            except BaseException as exc:
                if status.pid is None:  # the start failed: the supervisor raises it from _start
                    if isinstance(exc, Exception):
                        status.fail(exc)
                        return
                    status.fail(OTPError(f"child {child.spec.id!r} was cancelled while starting"))
                    raise
                reason = exit_reason_from(child, status.pid, exc)
            else:
                if status.pid is None:
                    status.fail(OTPError(f"child {child.spec.id!r} returned without calling "
                                         "task_status.started(pid)"))
                    return
                recorded = status.pid._proc.exit_reason
                reason = recorded if recorded is not None else "normal"
    finally:
        child.finished = True
        if child.done is not None:
            child.done.set()
    pid = status.pid
    if pid is not None and not child.terminating:
        supervisor.deliver(_ChildExit(child, pid, reason))


def exit_reason_from(child: _Child, pid: Pid, exc: BaseException) -> ExitReason:
    """The exit reason of a started child that raised `exc`; re-raises what is not the child's own.

    Exceptions (and groups of them) are the crash reason. A ``Cancelled`` is the supervisor's
    shutdown only if the supervisor cancelled this child's scope; anything else that is not an
    ``Exception`` (KeyboardInterrupt, SystemExit, a foreign Cancelled) propagates.
    """
    ours = child.scope is not None and child.scope.cancel_called
    shutdown: ExitReason = pid._proc.exit_reason or "shutdown"
    if isinstance(exc, trio.Cancelled):
        if ours:
            return shutdown
        raise exc
    if isinstance(exc, Exception):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        errors, rest = exc.split(Exception)
        others = rest.split(trio.Cancelled)[1] if rest is not None else None
        if others is None:
            if errors is not None:
                return errors.exceptions[0] if len(errors.exceptions) == 1 else errors
            if ours:
                return shutdown
    raise exc
