"""Supervisor and DynamicSupervisor: one core, owning its children's nursery.

Each child runs in a wrapper task the supervisor starts with ``await nursery.start(...)``, so
starting is ordered and ready-gated: child n+1 starts once child n called ``started(pid)``. Once
started, the wrapper shields the child from outside cancellation: only the supervisor cancels it,
one child at a time, in reverse start order, after setting the child's exit reason ("shutdown", or
"killed" for BRUTAL_KILL) and shutdown timeout (which bounds the child's ``terminate``). The
wrapper turns whatever the child ended with into an exit reason — splitting exception groups as
``except*`` would, never swallowing a foreign ``Cancelled`` — and posts it to the supervisor's
mailbox; the supervisor's loop decides what to restart. So a child's crash never reaches the
supervisor's nursery, whatever its restart type.

Restart intensity is counted per supervisor over all children: more than ``max_restarts`` restarts
within ``max_seconds`` and the supervisor shuts every child down in reverse order and raises
SupervisorGaveUp to its parent.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import trio

from ._call import Caller, _Raised, _System, call
from ._child import _Child, _ChildExit, _StartStatus, run_child
from ._child_spec import (
    BRUTAL_KILL,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildType,
    Restart,
    Strategy,
    SupervisorFlags,
)
from ._errors import MaxChildren, NotABehaviour, OTPError, SupervisorGaveUp
from ._messages import exit_reason_of
from ._pid import ExitReason, Pid, is_normal
from ._process import _Process, node
from ._reports import Report, ReportKind, emit

DEFAULT_FLAGS = SupervisorFlags()


@dataclass(frozen=True, slots=True)
class _Request:
    op: Literal["which", "count", "terminate", "restart", "delete", "start"]
    arg: Any = None


class _Core:
    """The supervisor process's state and loop (internal; see Supervisor / DynamicSupervisor)."""

    def __init__(self, flags: SupervisorFlags, *, dynamic: bool, max_children: int | None) -> None:
        self.flags = flags
        self.dynamic = dynamic
        self.max_children = max_children
        self.default_restart = Restart.TEMPORARY if dynamic else Restart.PERMANENT
        self.children: dict[object, _Child] = {}
        self.by_pid: dict[Pid, _Child] = {}
        self.restart_times: deque[float] = deque()
        self.serial = 0
        self.proc: _Process
        self.nursery: trio.Nursery
        self.label = ""

    # -- the process ----------------------------------------------------------------------------

    async def run(self, specs: Sequence[ChildSpec], name: str | None,
                  task_status: trio.TaskStatus[Pid]) -> None:
        n = node()
        self.proc = proc = n.spawn("supervisor", name)
        proc.behaviour = self
        self.label = name or str(proc.pid)
        reason: ExitReason = "normal"
        failure: BaseException | None = None
        starting: _Child | None = None
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                try:
                    for spec in specs:
                        self._add(spec)
                    for child in list(self.children.values()):
                        starting = child
                        await self._start(child)
                except Exception as exc:  # noqa: BLE001 - a child's init failed: stop the ones started, then fail
                    failure = exc
                    if starting is not None:
                        emit(Report(ReportKind.START_FAILED, self.label, starting.spec.id, None, exc),
                             "supervisor %s: child %r failed to start: %r", self.label, starting.spec.id, exc)
                else:
                    task_status.started(proc.pid)
                    outcome = await self._loop()
                    if isinstance(outcome, SupervisorGaveUp):
                        failure = outcome
                    else:
                        reason = outcome
                finally:
                    with trio.CancelScope(shield=True):
                        await self._shutdown_all()
            if failure is not None:
                reason = failure
                raise failure
        except BaseException as exc:
            reason = exit_reason_of(proc, exc)
            raise
        finally:
            n.exit(proc, reason)

    async def _loop(self) -> ExitReason | SupervisorGaveUp:
        proc = self.proc
        while True:
            msg = await proc.next()
            kind = type(msg)
            try:
                if kind is _ChildExit:
                    assert isinstance(msg, _ChildExit)
                    await self._child_exited(msg)
                elif kind is Caller:
                    assert isinstance(msg, Caller)
                    await self._handle_call(msg)
                elif kind is _System:
                    assert isinstance(msg, _System)
                    if msg.op == "stop":
                        return msg.arg  # type: ignore[no-any-return]
                    if msg.op == "get_state":
                        msg.caller.reply(self._which())
                    else:
                        msg.caller.reply(_Raised(NotABehaviour(
                            f"supervisor {self.label} does not support {msg.op}")))
                else:
                    _log_unexpected(self.label, msg)
            except SupervisorGaveUp as exc:
                return exc

    def format_status(self) -> str:
        running = sum(1 for c in self.children.values() if c.pid is not None)
        kind = "dynamic" if self.dynamic else str(self.flags.strategy)
        return f"{kind}, {running}/{len(self.children)} children running"

    # -- starting and stopping children ---------------------------------------------------------

    def _add(self, spec: ChildSpec) -> _Child:
        if self.dynamic:
            self.serial += 1
            key: object = self.serial
        else:
            key = spec.id
            if key in self.children:
                raise OTPError(f"supervisor {self.label}: duplicate child id {spec.id!r}")
        child = _Child(key, spec, spec.restart or self.default_restart)
        self.children[key] = child
        return child

    async def _start(self, child: _Child) -> Pid:
        status = _StartStatus(child)
        child.finished = False
        child.terminating = False
        child.done = None
        self.nursery.start_soon(run_child, child, status, self.proc)
        pid = await status.wait()
        self.by_pid[pid] = child
        return pid

    async def _stop_child(self, child: _Child) -> None:
        """Shut one child down: cancel it with its shutdown reason and wait for it to end.

        A child still starting (only after the supervisor was cancelled mid-start) is cancelled too.
        """
        pid = child.pid
        if child.finished or child.scope is None:
            child.pid = None
            return
        child.terminating = True
        if pid is not None:
            pid._proc.exit_hint = "killed" if child.spec.shutdown is BRUTAL_KILL else "shutdown"
        child.done = trio.Event()
        child.scope.cancel(reason=f"supervisor {self.label} shuts child {child.spec.id!r} down")
        await child.done.wait()
        if pid is not None:
            self.by_pid.pop(pid, None)
        child.pid = None

    async def _shutdown_all(self) -> None:
        for child in reversed(list(self.children.values())):
            await self._stop_child(child)

    # -- restarts -------------------------------------------------------------------------------

    async def _child_exited(self, msg: _ChildExit) -> None:
        child = msg.child
        if child.pid != msg.pid:
            return  # an exit we already handled (the child was shut down or restarted meanwhile)
        self.by_pid.pop(msg.pid, None)
        child.pid = None
        reason = msg.reason
        abnormal = not is_normal(reason)
        if abnormal:
            emit(Report(ReportKind.CRASH, self.label, child.spec.id, msg.pid, reason, child.restarts),
                 "supervisor %s: child %r (%s) exited: %r", self.label, child.spec.id, msg.pid, reason)
        if child.restart is Restart.TEMPORARY or (child.restart is Restart.TRANSIENT and not abnormal):
            if self.dynamic or child.restart is Restart.TEMPORARY:
                self.children.pop(child.key, None)
            return
        await self._restart(child, reason)

    def _count_restart(self, child: _Child, reason: ExitReason) -> None:
        now = trio.current_time()
        times = self.restart_times
        times.append(now)
        while times and times[0] < now - self.flags.max_seconds:
            times.popleft()
        if len(times) > self.flags.max_restarts:
            gave_up = SupervisorGaveUp(self.label, child.spec.id, reason, self.flags.max_restarts,
                                       self.flags.max_seconds)
            emit(Report(ReportKind.GAVE_UP, self.label, child.spec.id, None, reason, child.restarts),
                 "%s", gave_up)
            raise gave_up

    async def _restart(self, child: _Child, reason: ExitReason) -> None:
        self._count_restart(child, reason)
        children = list(self.children.values())
        strategy = Strategy.ONE_FOR_ONE if self.dynamic else self.flags.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            group = [child]
        elif strategy is Strategy.ONE_FOR_ALL:
            group = children
        else:
            group = children[children.index(child):]
        # Only what ran comes back: a child stopped by terminate_child (or a TRANSIENT one that
        # ended normally) stays stopped, and a TEMPORARY one stopped here is forgotten.
        group = [m for m in group if m is child or m.pid is not None]
        for other in reversed(group):
            if other is not child:
                await self._stop_child(other)
        for member in group:
            if member is not child and member.restart is Restart.TEMPORARY:
                self.children.pop(member.key, None)
                continue
            await self._restart_one(member)

    async def _restart_one(self, child: _Child) -> None:
        """Start `child` again; a failed start counts as one more restart (and is retried)."""
        while True:
            child.restarts += 1
            try:
                pid = await self._start(child)
            except Exception as exc:  # noqa: BLE001 - a failed restart counts as one more restart
                emit(Report(ReportKind.START_FAILED, self.label, child.spec.id, None, exc, child.restarts),
                     "supervisor %s: restarting child %r failed: %r", self.label, child.spec.id, exc)
                self._count_restart(child, exc)
                continue
            emit(Report(ReportKind.RESTART, self.label, child.spec.id, pid, None, child.restarts),
                 "supervisor %s: restarted child %r as %s (restart %d)", self.label, child.spec.id,
                 pid, child.restarts)
            return

    # -- client requests ------------------------------------------------------------------------

    async def _handle_call(self, caller: Caller) -> None:
        request = caller.request
        if not isinstance(request, _Request):
            caller.reply(_Raised(OTPError(f"supervisor {self.label}: unknown request {request!r}")))
            return
        try:
            caller.reply(await self._request(request))
        except OTPError as exc:
            caller.reply(_Raised(exc))
        except Exception as exc:  # noqa: BLE001 - a child's start failed: the caller gets the reason, we go on
            caller.reply(_Raised(exc))

    async def _request(self, request: _Request) -> Any:
        op, arg = request.op, request.arg
        if op == "which":
            return self._which()
        if op == "count":
            running = [c for c in self.children.values() if c.pid is not None]
            sups = sum(1 for c in running if c.spec.type is ChildType.SUPERVISOR)
            return ChildCounts(len(self.children), len(running), sups, len(running) - sups)
        if op == "start":
            spec: ChildSpec = arg
            if self.max_children is not None and len(self.children) >= self.max_children:
                raise MaxChildren(f"supervisor {self.label} already runs {self.max_children} children "
                                  f"(max_children); cannot start {spec.id!r}")
            child = self._add(spec)
            try:
                return await self._start(child)
            except BaseException:
                self.children.pop(child.key, None)
                raise
        child = self._find(arg)
        if op == "terminate":
            await self._stop_child(child)
            if self.dynamic or child.restart is Restart.TEMPORARY:
                self.children.pop(child.key, None)
            return None
        if op == "restart":
            if child.pid is not None:
                raise OTPError(f"supervisor {self.label}: child {child.spec.id!r} is running ({child.pid})")
            return await self._start(child)
        if child.pid is not None:  # delete
            raise OTPError(f"supervisor {self.label}: child {child.spec.id!r} is running; "
                           "terminate it before deleting it")
        del self.children[child.key]
        return None

    def _find(self, id_or_pid: str | Pid) -> _Child:
        if isinstance(id_or_pid, Pid):
            child = self.by_pid.get(id_or_pid)
        else:
            child = None if self.dynamic else self.children.get(id_or_pid)
        if child is None:
            shown = str(id_or_pid) if isinstance(id_or_pid, Pid) else repr(id_or_pid)
            raise OTPError(f"supervisor {self.label} has no child {shown}"
                           + (" (a DynamicSupervisor's children are addressed by pid)" if self.dynamic else ""))
        return child

    def _which(self) -> list[ChildInfo]:
        return [ChildInfo(c.spec.id, c.pid, c.spec.type, c.restart, c.restarts)
                for c in self.children.values()]


def _log_unexpected(label: str, msg: object) -> None:
    import logging
    logging.getLogger("switchd.otp").warning("supervisor %s got an unexpected message %r", label, msg,
                                             extra={"supervisor": label})


class Supervisor:
    """A supervisor of a fixed list of children, started in order (see ChildSpec, SupervisorFlags)."""

    @classmethod
    async def start_link(cls, children: Sequence[ChildSpec], flags: SupervisorFlags = DEFAULT_FLAGS, *,
                         name: str | None = None,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Start `children` in order, each ready before the next, then supervise them.

        ``task_status.started(pid)`` once all children started. If a child's start fails, the
        ones already started are shut down in reverse order and its exception is raised here.
        Raises SupervisorGaveUp when restart intensity is exceeded (after shutting children down).
        """
        await _Core(flags, dynamic=False, max_children=None).run(children, name, task_status)


async def _sup_call(sup: Pid | str, op: Any, arg: Any = None, timeout: float = math.inf) -> Any:
    return await call(sup, _Request(op, arg), timeout=timeout)


async def start_child(sup: Pid | str, spec: ChildSpec, *, timeout: float = math.inf) -> Pid:
    """Add `spec` to the supervisor `sup` and start it; returns the child's pid.

    On a Supervisor the id must be new. Raises MaxChildren (DynamicSupervisor at its limit), or
    what the child's start raised (the supervisor itself goes on).
    """
    pid: Pid = await _sup_call(sup, "start", spec, timeout)
    return pid


async def terminate_child(sup: Pid | str, id_or_pid: str | Pid) -> None:
    """Shut a child down (its terminate runs, within its shutdown timeout) and do not restart it.

    A Supervisor keeps the spec (restart_child starts it again) unless the child is TEMPORARY; a
    DynamicSupervisor forgets the child. Children of a DynamicSupervisor are named by pid.
    """
    await _sup_call(sup, "terminate", id_or_pid)


async def restart_child(sup: Pid | str, child_id: str) -> Pid:
    """Start again a terminated child whose spec the Supervisor kept; returns its new pid."""
    pid: Pid = await _sup_call(sup, "restart", child_id)
    return pid


async def delete_child(sup: Pid | str, child_id: str) -> None:
    """Forget the spec of a terminated child of a Supervisor."""
    await _sup_call(sup, "delete", child_id)


async def which_children(sup: Pid | str) -> list[ChildInfo]:
    """The supervisor's children in start order, running or not."""
    result: list[ChildInfo] = await _sup_call(sup, "which", None, 5.0)
    return result


async def count_children(sup: Pid | str) -> ChildCounts:
    """How many child specs the supervisor has, how many run, and of which type."""
    result: ChildCounts = await _sup_call(sup, "count", None, 5.0)
    return result
