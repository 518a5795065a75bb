"""Request/reply between processes: Caller, call, cast, reply, and the system-message envelope.

A call puts a ``Caller`` (which is also the request envelope: one allocation per call) in the
server's mailbox and in the server's set of pending callers, then parks the calling task. The
server answers with ``caller.reply(value)``, now or later (a deferred reply). When the server exits
first, its exit notifies every pending caller with ``ServerExited(reason)`` at once. When the
caller gives up (timeout or cancellation), the Caller is marked abandoned: a reply that comes later
is dropped without touching the server. The calling task need not be a process.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

import trio

from ._errors import CallTimeout, NoProcess, NotABehaviour, OTPError, ServerExited
from ._pid import ExitReason, Pid
from ._process import _Process, node

_WAITING, _REPLIED, _EXITED, _ABANDONED = 0, 1, 2, 3


class Caller:
    """Who is waiting for a reply (Erlang's ``From``): pass it to ``reply`` to answer later.

    ``request`` is what was asked; ``pid`` is the calling process (None when the caller is a plain
    task). Replying twice, or after the caller gave up, is a harmless no-op.
    """

    __slots__ = ("_origin", "_server", "_status", "_task", "_value", "request")

    def __init__(self, request: object, server: _Process, origin: trio.lowlevel.Task) -> None:
        self.request = request
        self._server = server
        self._task: trio.lowlevel.Task | None = None
        self._origin = origin
        self._status = _WAITING
        self._value: Any = None

    @property
    def pid(self) -> Pid | None:
        """The calling process, or None when a plain task called."""
        proc = self._server.node.by_task.get(self._origin)
        return proc.pid if proc is not None else None

    @property
    def waiting(self) -> bool:
        """True while the caller still waits for its reply."""
        return self._status == _WAITING

    def reply(self, value: object) -> None:
        """Answer the caller; dropped when it already got an answer or gave up."""
        if self._status != _WAITING:
            return
        self._status = _REPLIED
        self._value = value
        callers = self._server.callers
        if callers is not None:
            callers.discard(self)
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)

    def _server_exited(self, reason: ExitReason) -> None:
        if self._status != _WAITING:
            return
        self._status = _EXITED
        self._value = reason
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._task = None
        return trio.lowlevel.Abort.SUCCEEDED

    def _abandon(self) -> None:
        self._status = _ABANDONED
        self._task = None
        callers = self._server.callers
        if callers is not None:
            callers.discard(self)

    def __repr__(self) -> str:
        return f"Caller({self.request!r}, server={self._server.pid})"


def reply(caller: Caller, value: object) -> None:
    """Answer a deferred call (``handle_call`` returned ``NoReply``); same as ``caller.reply(value)``."""
    caller.reply(value)


class _Raised:
    """A reply that is an error: ``call`` raises ``exc`` in the caller (used by the built-in
    behaviours to report a bad request without crashing, e.g. an unknown child id)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Cast:
    """The envelope of a cast, so the server can tell it from an info message."""

    __slots__ = ("request",)

    def __init__(self, request: object) -> None:
        self.request = request


class _System:
    """A system message (stop, get_state, suspend ...), handled even while the server is suspended."""

    __slots__ = ("arg", "caller", "op")

    def __init__(self, op: str, arg: Any, caller: Caller) -> None:
        self.op = op
        self.arg = arg
        self.caller = caller


def is_system(msg: object) -> bool:
    return type(msg) is _System


def _lookup(dest: Pid | str, what: object) -> _Process:
    proc = dest._proc if type(dest) is Pid else node().resolve(dest)
    if not proc.alive:
        raise NoProcess(f"{_short(what)} to {dest}: the process is not alive")
    return proc


def _post(proc: _Process, caller: Caller, envelope: object) -> None:
    """Make `caller` pending at `proc` and deliver `envelope` (the caller itself, for a call)."""
    if proc.task is caller._origin:
        raise OTPError(f"{proc.pid} called itself with {_short(caller.request)}: that would deadlock")
    callers = proc.callers
    if callers is None:
        callers = proc.callers = set()
    callers.add(caller)
    proc.deliver(envelope)


def _short(value: object) -> str:
    return reprlib.repr(value)


async def _wait_reply(caller: Caller, proc: _Process, timeout: float, what: object) -> Any:
    caller._task = caller._origin
    try:
        if math.isinf(timeout):
            await trio.lowlevel.wait_task_rescheduled(caller._abort)
        else:
            with trio.CancelScope(deadline=trio.current_time() + timeout):
                await trio.lowlevel.wait_task_rescheduled(caller._abort)
    finally:
        if caller._status == _WAITING:
            caller._abandon()
    status = caller._status
    if status == _REPLIED:
        value = caller._value
        if type(value) is _Raised:
            raise value.exc
        return value
    if status == _EXITED:
        reason = caller._value
        if isinstance(reason, BaseException):
            raise ServerExited(reason, f"{proc.pid} exited before replying to {_short(what)}: "
                                       f"{reason!r}") from reason
        raise ServerExited(reason, f"{proc.pid} exited before replying to {_short(what)}: {reason!r}")
    raise CallTimeout(f"no reply from {proc.pid} to {_short(what)} within {timeout:g}s")


async def call(dest: Pid | str, request: object, *, timeout: float = 5.0) -> Any:
    """Send `request` to the server `dest` (pid or registered name) and wait for its reply.

    Raises CallTimeout after `timeout` seconds (``math.inf`` waits forever), ServerExited at once
    when the server exits before replying (``.reason`` carries its exception if it crashed), and
    NoProcess when `dest` is not alive or not registered.
    """
    proc = dest._proc if type(dest) is Pid else node().resolve(dest)
    if not proc.alive:
        raise NoProcess(f"call {_short(request)} to {dest}: the process is not alive")
    caller = Caller(request, proc, trio.lowlevel.current_task())
    _post(proc, caller, caller)
    return await _wait_reply(caller, proc, timeout, request)


def cast(dest: Pid | str, request: object) -> None:
    """Send `request` to `dest`'s ``handle_cast``; never blocks. A dead pid drops it; an unknown name
    raises NoProcess."""
    if type(dest) is Pid:
        dest._proc.deliver(_Cast(request))
    else:
        node().resolve(dest).deliver(_Cast(request))


async def system_call(dest: Pid | str, op: str, arg: Any = None, *, timeout: float = 5.0) -> Any:
    """Send the system message `op` and wait for its answer (used by stop and the sys functions)."""
    proc = _lookup(dest, op)
    if proc.behaviour is None:
        raise NotABehaviour(f"{op} to {proc.pid}: a plain {proc.kind} handles no system messages")
    caller = Caller(op, proc, trio.lowlevel.current_task())
    _post(proc, caller, _System(op, arg, caller))
    return await _wait_reply(caller, proc, timeout, op)
