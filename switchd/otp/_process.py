"""The process record, its mailbox and timers, and the per-trio-run node that holds them all.

A process is a trio task plus a ``_Process`` record: a FIFO mailbox (a deque, created on first
delivery), the monitors and pending callers to notify when it exits, and the timers that
``send_after`` armed for it. Delivering never blocks: append, and reschedule the task if it is
parked in ``receive``. Timers live in the destination's record and are fired by the destination
itself when it next waits (its wait is given the earliest timer deadline), so a timer needs no task
of its own and dies with its process.

The node (``_Node``) is found through a ``trio.lowlevel.RunVar``: every ``trio.run`` gets its own
pid counter, name table and process table, so tests never see each other's processes.
"""

from __future__ import annotations

import heapq
import logging
import math
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import trio

from ._errors import AlreadyRegistered, NoProcess, OTPError
from ._pid import Down, ExitReason, MonitorRef, Pid, TimerRef

if TYPE_CHECKING:
    from ._call import Caller
    from ._reports import ReportHandler

log = logging.getLogger("switchd.otp")

# A process that finds its mailbox non-empty does not park; it yields fully only every
# BURST messages (and checks for cancellation on each), so a flooded server cannot starve the loop.
BURST = 32

# How long terminate() may run when no supervisor set a shutdown timeout (OTP's default, 5000 ms).
DEFAULT_SHUTDOWN = 5.0


class _Process:
    """The record behind a Pid (internal; read it through ``processes()``)."""

    __slots__ = (
        "_burst",
        "_cancelled_timers",
        "_pid",
        "_waiter",
        "_wake",
        "alive",
        "behaviour",
        "callers",
        "child_id",
        "exit_hint",
        "exit_reason",
        "groups",
        "inline",
        "kind",
        "mailbox",
        "monitors",
        "name",
        "node",
        "number",
        "parent",
        "restarts",
        "shutdown_timeout",
        "started_at",
        "state",
        "suspended",
        "task",
        "timers",
        "watching",
    )

    def __init__(self, node: _Node, number: int, task: trio.lowlevel.Task, kind: str,
                 parent: _Process | None) -> None:
        self.node = node
        self.number = number
        # A Pid refers to its process (a Pid outlives it: sending to it then drops the message); the
        # process does not hold its Pid in return, only weakly: a cycle of the two would outlive every
        # call's process until a full collection (or, frozen, `switchd.collector`'s sweep) found it.
        self._pid: weakref.ref[Pid] | None = None
        self.task: trio.lowlevel.Task | None = task
        self.kind = kind
        self.name: str | None = None
        self.parent = parent
        self.restarts = 0
        self.started_at = trio.current_time()
        self.alive = True
        self.exit_reason: ExitReason | None = None
        self.mailbox: deque[object] | None = None
        # set_inline_handler(): takes a message in the sender's task; True when it was handled.
        self.inline: Callable[[object], bool] | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._wake: _Wake | None = None  # its entry in the node's wake-up heap, while it has one
        self._burst = 0
        self.monitors: dict[MonitorRef, _Process] | None = None  # who watches me
        self.watching: dict[MonitorRef, None] | None = None  # whom I watch
        self.callers: set[Caller] | None = None
        # (deadline, number, ref): a heap of tuples compares in C, not with a __lt__ per step
        self.timers: list[tuple[float, int, TimerRef]] | None = None
        self._cancelled_timers = 0
        self.groups: set[str] | None = None
        # Set by behaviours: the callback object and its current state, for format_status/sys.
        self.behaviour: Any = None
        self.state: Any = None
        self.suspended = False
        # Set by a supervisor before it cancels the process: the reason to exit with
        # ("shutdown" or "killed"); and how long terminate() may take (the child spec's shutdown).
        self.exit_hint: str | None = None
        self.shutdown_timeout: float = DEFAULT_SHUTDOWN
        self.child_id: str | None = None

    @property
    def pid(self) -> Pid:
        """This process's Pid (equal to, though not always the same object as, one handed out before)."""
        ref = self._pid
        pid = None if ref is None else ref()
        if pid is None:
            pid = Pid(self.number, self)
            self._pid = weakref.ref(pid)
        return pid

    # -- delivery -------------------------------------------------------------------------------

    def deliver(self, msg: object) -> None:
        """Append `msg` to the mailbox and wake the process if it waits; dropped if it exited."""
        if not self.alive:
            return
        mailbox = self.mailbox
        if self.inline is not None and not mailbox and not self.suspended and self._take_inline(msg):
            return
        if mailbox is None:
            mailbox = self.mailbox = deque()
        mailbox.append(msg)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    def _take_inline(self, msg: object) -> bool:
        """Offer `msg` to the inline handler; False (deliver it to the mailbox) if it declines or fails."""
        assert self.inline is not None
        try:
            return self.inline(msg)
        except Exception:  # a bug in the handler: the process's own loop gets the message instead
            log.exception("%s: inline handler failed on %r; delivered to the mailbox", self.pid, msg,
                          extra={"pid": str(self.pid)})
            return False

    def mailbox_depth(self) -> int:
        return len(self.mailbox) if self.mailbox is not None else 0

    # -- receiving ------------------------------------------------------------------------------

    # The one mailbox loop. Every receiving loop (``next``, the GenServer and StateMachine loops,
    # which run it inline to keep a frame off each parked process) is: ``if proc.ready(): await
    # proc.pace(); msg = proc.take()`` else ``await proc.park()``. The cancellation check comes
    # before the message leaves the mailbox: a process cancelled there (shut down) still finds it
    # in its terminate.

    def ready(self) -> bool:
        """True when a message waits (timers that are due are fired into the mailbox first)."""
        if self.timers:
            self._fire_due_timers()
        return bool(self.mailbox)

    def take(self) -> object:
        """The oldest message; only after `ready()` said there is one (and `pace()`)."""
        mailbox = self.mailbox
        assert mailbox is not None
        return mailbox.popleft()

    def pace(self) -> Coroutine[Any, Any, None]:
        """What to await after taking a message: a cancellation check, and a full yield every BURST."""
        self._burst += 1
        if self._burst >= BURST:
            self._burst = 0
            return trio.lowlevel.checkpoint()  # noqa: ASYNC105 - the caller awaits it
        return trio.lowlevel.checkpoint_if_cancelled()  # noqa: ASYNC105 - the caller awaits it

    def park(self, deadline: float | None = None) -> Coroutine[Any, Any, object]:
        """Wait until a delivery, the earliest timer or `deadline`, whichever comes first.

        No cancel scope per wait: a deadline is an entry in the node's wake-up heap (see
        `_Node.wake_at`), kept across waits while it does not change. Returned, not awaited here,
        so that a parked process has no frame of this method.
        """
        self._burst = 0
        timers = self.timers
        if timers:
            first = timers[0][0]
            deadline = first if deadline is None else min(deadline, first)
        if self.mailbox is not None and not self.mailbox:
            self.mailbox = None  # an idle process keeps no deque (760 bytes)
        if deadline is not None:
            self.node.wake_at(self, deadline)
        elif self._wake is not None:
            self.node.drop_wake(self)  # its timers are gone: no wake-up for nothing
        self._waiter = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._abort)  # noqa: ASYNC105 - awaited by the caller

    async def next(self) -> object:
        """The oldest message; waits for one. Only the process's own task may call this."""
        while True:
            if self.ready():
                await self.pace()
                return self.take()
            await self.park()

    async def receive(self, match: Callable[[object], bool] | None, deadline: float | None) -> object:
        """The oldest message `match` accepts (any when None); raises trio.TooSlowError at `deadline`."""
        if match is None and deadline is None:
            return await self.next()
        scanned = 0
        while True:
            if self.timers:
                self._fire_due_timers()
            mailbox = self.mailbox
            if mailbox:
                if match is None:
                    await trio.lowlevel.checkpoint_if_cancelled()
                    return mailbox.popleft()
                for index in range(scanned, len(mailbox)):
                    msg = mailbox[index]
                    if match(msg):
                        del mailbox[index]
                        await trio.lowlevel.checkpoint_if_cancelled()
                        return msg
                scanned = len(mailbox)
            if deadline is not None and trio.current_time() >= deadline:
                await trio.lowlevel.checkpoint()
                raise trio.TooSlowError
            await self.park(deadline)

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    # -- timers ---------------------------------------------------------------------------------

    def add_timer(self, delay: float, msg: object) -> TimerRef:
        return self.add_timer_at(self.node.now() + delay, msg)

    def add_timer_at(self, deadline: float, msg: object) -> TimerRef:
        ref = TimerRef(self.node.next_ref(), deadline, msg, self)
        if not self.alive:
            ref.active = False
            return ref
        if self.timers is None:
            self.timers = []
        heapq.heappush(self.timers, (ref.deadline, ref._n, ref))
        waiter = self._waiter
        if waiter is not None and self.timers[0][2] is ref:
            # The process is parked with a later (or no) deadline: wake it to re-arm its wait.
            self._waiter = None
            trio.lowlevel.reschedule(waiter)
        return ref

    def cancel_timer(self, ref: TimerRef) -> bool:
        if not ref.active:
            return False
        ref.active = False
        timers = self.timers
        if timers is not None:
            self._cancelled_timers += 1
            if self._cancelled_timers > 32 and self._cancelled_timers * 2 > len(timers):
                # Drop cancelled entries so re-armed timeouts (an event timeout per event) don't pile up.
                timers[:] = [t for t in timers if t[2].active]
                heapq.heapify(timers)
                self._cancelled_timers = 0
        return True

    def _fire_due_timers(self) -> None:
        timers = self.timers
        assert timers is not None
        now = self.node.now()
        while timers and timers[0][0] <= now:
            ref = heapq.heappop(timers)[2]
            if ref.active:
                ref.active = False
                if self.mailbox is None:
                    self.mailbox = deque()
                self.mailbox.append(ref.msg)
            else:
                self._cancelled_timers = max(0, self._cancelled_timers - 1)


class _Wake:
    """An entry of the node's wake-up heap: wake `proc` at `deadline` (None once it is stale)."""

    __slots__ = ("deadline", "proc")

    def __init__(self, deadline: float, proc: _Process) -> None:
        self.deadline = deadline
        self.proc: _Process | None = proc


class _Node:
    """Everything one trio run's processes share: pid counter, process table, names, groups.

    And the wake-ups of processes parked until a deadline (a timer, a receive timeout): one heap
    for all of them, served by one system task of the run that sleeps until the earliest. A parked
    process therefore costs no trio cancel scope per wait (entering and leaving one was the largest
    per-message cost of a call session, which always has a timer), and its entry is kept across
    waits while its earliest deadline does not change.
    """

    def __init__(self) -> None:
        # The run's clock, read directly: trio.current_time() is three Python calls, this one (it is
        # read on every step of a process with timers).
        self.now: Callable[[], float] = trio.lowlevel.current_clock().current_time
        self._counter = 0
        self._refs = 0
        self._wakes: list[tuple[float, int, _Wake]] = []  # (deadline, number, wake): compared in C
        self._stale_wakes = 0
        self._waker: trio.CancelScope | None = None  # the wake-up task's sleep, while it sleeps
        self._waker_started = False
        self._sleeping_until = math.inf
        self.by_task: dict[trio.lowlevel.Task, _Process] = {}
        self.processes: dict[int, _Process] = {}
        self.names: dict[str, _Process] = {}
        self.groups: dict[str, dict[_Process, None]] = {}
        self.report_handler: ReportHandler | None = None

    def wake_at(self, proc: _Process, deadline: float) -> None:
        """Reschedule `proc` if it is still parked at `deadline` (its previous wake-up is replaced)."""
        old = proc._wake
        if old is not None:
            if old.deadline == deadline:
                return
            self.drop_wake(proc)
        self._refs += 1
        wake = proc._wake = _Wake(deadline, proc)
        heapq.heappush(self._wakes, (deadline, self._refs, wake))
        if deadline < self._sleeping_until:
            self._sleeping_until = deadline
            if self._waker is not None:
                self._waker.deadline = deadline
            elif not self._waker_started:
                self._waker_started = True
                trio.lowlevel.spawn_system_task(self._serve_wakes, name="switchd.otp wake-ups")

    def drop_wake(self, proc: _Process) -> None:
        """Forget `proc`'s wake-up (it exited, or parks until another deadline)."""
        wake = proc._wake
        if wake is None:
            return
        wake.proc = None
        proc._wake = None
        self._stale_wakes += 1
        wakes = self._wakes
        if self._stale_wakes > 64 and self._stale_wakes * 2 > len(wakes):
            wakes[:] = [w for w in wakes if w[2].proc is not None]  # a dead process must not linger here
            heapq.heapify(wakes)
            self._stale_wakes = 0

    async def _serve_wakes(self) -> None:
        wakes = self._wakes
        now_fn = self.now
        while True:
            now = now_fn()
            while wakes and wakes[0][0] <= now:
                wake = heapq.heappop(wakes)[2]
                proc = wake.proc
                if proc is None:
                    self._stale_wakes = max(0, self._stale_wakes - 1)
                    continue
                proc._wake = None
                waiter = proc._waiter
                if waiter is not None:
                    proc._waiter = None
                    trio.lowlevel.reschedule(waiter)
            self._sleeping_until = wakes[0][0] if wakes else math.inf
            with trio.CancelScope(deadline=self._sleeping_until) as self._waker:
                await trio.sleep_forever()
            self._waker = None

    def next_ref(self) -> int:
        self._refs += 1
        return self._refs

    def spawn(self, kind: str, name: str | None) -> _Process:
        """Make the current task a process of `kind`, registered as `name` when given."""
        task = trio.lowlevel.current_task()
        running = self.by_task.get(task)
        if running is not None:
            raise OTPError(f"this task already runs process {running.pid} ({running.kind}); start the "
                           f"{kind} in a task of its own, e.g. with nursery.start()")
        if name is not None and name in self.names:
            raise AlreadyRegistered(f"name {name!r} is already registered to {self.names[name].pid}")
        if name is None and "." not in task.name and "<" not in task.name:
            # trio's nursery.start(fn, ..., name=...) takes `name` as the TASK name: the caller
            # most likely meant a registered name. Say so instead of failing later with NoProcess.
            log.warning("a %s started in task %r without a registered name: nursery.start() takes "
                        "name= for the task; use functools.partial(Cls.start_link, ..., name=%r)",
                        kind, task.name, task.name, extra={"task": task.name})
        self._counter += 1
        proc = _Process(self, self._counter, task, kind, self._parent_of(task))
        self.by_task[task] = proc
        self.processes[self._counter] = proc
        if name is not None:
            self.names[name] = proc
            proc.name = name
        return proc

    def _parent_of(self, task: trio.lowlevel.Task) -> _Process | None:
        """The nearest process among the task's ancestors (the supervisor, for a supervised child)."""
        nursery = task.parent_nursery
        while nursery is not None:
            parent_task = nursery.parent_task
            proc = self.by_task.get(parent_task)
            if proc is not None:
                return proc
            nursery = parent_task.parent_nursery
        return None

    def exit(self, proc: _Process, reason: ExitReason) -> None:
        """Record `proc`'s exit: release its name and groups, notify monitors and pending callers."""
        if not proc.alive:
            return
        proc.alive = False
        proc.exit_reason = reason
        if proc.task is not None:
            self.by_task.pop(proc.task, None)
            proc.task = None
        self.processes.pop(proc.number, None)
        if proc.name is not None and self.names.get(proc.name) is proc:
            del self.names[proc.name]
        if proc.groups:
            for key in proc.groups:
                members = self.groups.get(key)
                if members is not None:
                    members.pop(proc, None)
                    if not members:
                        del self.groups[key]
            proc.groups = None
        proc.mailbox = None
        proc.timers = None
        self.drop_wake(proc)
        proc.inline = None
        proc._waiter = None
        proc.behaviour = proc.state = None  # a Pid kept in a log or CDR must not keep a dead state alive
        if proc.monitors:
            monitors, proc.monitors = proc.monitors, None
            for ref, watcher in monitors.items():
                if watcher.watching is not None:
                    watcher.watching.pop(ref, None)
                watcher.deliver(Down(ref, proc.pid, reason))
        if proc.watching:
            watching, proc.watching = proc.watching, None
            for ref in watching:
                target = ref.target
                if target is not None and target.monitors is not None:
                    target.monitors.pop(ref, None)
        if proc.callers:
            callers, proc.callers = proc.callers, None
            for caller in callers:
                caller._server_exited(reason)

    def resolve(self, dest: Pid | str) -> _Process:
        """The process for `dest`; raises NoProcess for an unregistered name (a dead pid is returned)."""
        if isinstance(dest, Pid):
            return dest._proc
        proc = self.names.get(dest)
        if proc is None:
            raise NoProcess(f"no process is registered as {dest!r}")
        return proc

    def current(self) -> _Process:
        """The process the calling task runs; raises NoProcess outside one."""
        proc = self.by_task.get(trio.lowlevel.current_task())
        if proc is None:
            raise NoProcess("not inside a switchd.otp process (the calling task is no process)")
        return proc


_NODE: trio.lowlevel.RunVar[_Node] = trio.lowlevel.RunVar("switchd_otp_node")


def node() -> _Node:
    """This trio run's node, created on first use."""
    try:
        return _NODE.get()
    except LookupError:
        created = _Node()
        _NODE.set(created)
        return created
