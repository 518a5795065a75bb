"""Request/reply between processes: Caller, call, cast, reply, and the system-message envelope.

A call puts a ``Caller`` (which is also the request envelope: one allocation per call) in the
server's mailbox and in the server's set of pending callers, then parks the calling task. The
server answers with ``caller.reply(value)``, now or later (a deferred reply). When the server exits
first, its exit notifies every pending caller with ``ServerExited(reason)`` at once. When the
caller gives up (timeout or cancellation), the Caller is marked abandoned: a reply that comes later
is dropped without touching the server. The calling task need not be a process.

A call's timeout costs no trio ``CancelScope`` of its own (entering and leaving one was half of a
call's cost): every waiting caller's deadline sits in one heap per node (``_Deadlines``), served by
one system task that sleeps until the earliest deadline and times out the callers whose deadline
passed, as Erlang's timer wheel does for ``receive … after``. Cancellation of the calling task
still reaches it directly (its abort function).
"""

from __future__ import annotations

import heapq
import itertools
import math
import reprlib
from typing import Any

import trio

from ._errors import CallTimeout, NoProcess, NotABehaviour, OTPError, ServerExited
from ._pid import ExitReason, Pid
from ._process import _Process, node

_WAITING, _REPLIED, _EXITED, _ABANDONED = 0, 1, 2, 3

# The deadlines heap is rebuilt without the callers that are done once they are more than half of
# it (and more than this many): memory stays within twice the calls in flight.
_COMPACT_AT = 64


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

    def _time_out(self) -> None:
        """The deadline passed: give up (as a cancelled caller does) and wake the calling task."""
        if self._status != _WAITING:
            return
        task = self._task
        self._abandon()
        if task is not None:
            trio.lowlevel.reschedule(task)

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


class _Deadlines:
    """The deadlines of one trio run's waiting calls, and the one system task that enforces them.

    ``add`` is a heap push; the task sleeps until the earliest deadline of a caller still waiting
    (its own CancelScope's deadline) and times out every caller whose deadline has passed. A caller
    that got its answer (or was cancelled) leaves the heap when it reaches the top, and the task's
    deadline moves on to the next caller's: the run's deadlines are exactly those of its waiting
    calls, as with one CancelScope per call, so a MockClock jumps to the same times. Callers done
    deeper in the heap are dropped by a compaction once they are more than half of it.
    """

    __slots__ = ("_done", "_heap", "_scope", "_serial", "_task")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Caller]] = []
        self._serial = itertools.count()  # ties never compare two Callers
        self._done = 0  # about how many callers in the heap no longer wait
        self._task: trio.lowlevel.Task | None = None  # the timer task, while it sleeps
        self._scope: trio.CancelScope | None = None  # its sleep's deadline (None: no deadline)
        trio.lowlevel.spawn_system_task(self._run, name="switchd.otp call deadlines")

    def add(self, deadline: float, caller: Caller) -> None:
        heapq.heappush(self._heap, (deadline, next(self._serial), caller))
        task = self._task
        if task is None:
            return  # the timer task is running: it looks at the heap before it sleeps again
        scope = self._scope
        if scope is None:  # asleep with nothing to wait for: wake it
            self._task = None
            trio.lowlevel.reschedule(task)
        elif deadline < scope.deadline:
            scope.deadline = deadline

    def done(self) -> None:
        """A caller with a deadline in the heap stopped waiting (answered, server exited, cancelled)."""
        heap = self._heap
        if heap and heap[0][2]._status == _WAITING:  # not the first deadline: dropped later
            self._done += 1
            if self._done > _COMPACT_AT and self._done * 2 > len(heap):
                heap[:] = [entry for entry in heap if entry[2]._status == _WAITING]
                heapq.heapify(heap)
                self._done = 0
            return
        self._drop_done()
        scope = self._scope
        if scope is not None:
            scope.deadline = heap[0][0] if heap else math.inf

    def _drop_done(self) -> None:
        heap = self._heap
        while heap and heap[0][2]._status != _WAITING:
            heapq.heappop(heap)
            if self._done:
                self._done -= 1

    async def _run(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                caller = heapq.heappop(heap)[2]
                if caller._status == _WAITING:
                    caller._time_out()
                elif self._done:
                    self._done -= 1
            self._drop_done()
            self._task = trio.lowlevel.current_task()
            if not heap:
                self._scope = None
                await trio.lowlevel.wait_task_rescheduled(self._abort)
                continue
            with trio.CancelScope(deadline=heap[0][0]) as self._scope:
                await trio.lowlevel.wait_task_rescheduled(self._abort)
            self._task = self._scope = None

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._task = None
        return trio.lowlevel.Abort.SUCCEEDED


_DEADLINES: trio.lowlevel.RunVar[_Deadlines] = trio.lowlevel.RunVar("switchd_otp_call_deadlines")


def _deadlines() -> _Deadlines:
    try:
        return _DEADLINES.get()
    except LookupError:
        deadlines = _Deadlines()
        _DEADLINES.set(deadlines)
        return deadlines


async def _wait_reply(caller: Caller, proc: _Process, timeout: float, what: object) -> Any:
    caller._task = caller._origin
    deadlines = None
    if not math.isinf(timeout):
        deadlines = _deadlines()
        deadlines.add(trio.current_time() + timeout, caller)
    try:
        await trio.lowlevel.wait_task_rescheduled(caller._abort)
    finally:
        status = caller._status
        if status == _WAITING:  # cancelled
            caller._abandon()
        if deadlines is not None and status != _ABANDONED:
            deadlines.done()  # its entry in the heap is dead now
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
