"""StateMachine: gen_statem in handle_event_function mode, with its events, results and actions.

One event at a time is taken from, in this order: the events inserted by ``NextEvent`` actions,
then (after a state change) the postponed events, oldest first, then the mailbox. For every event
``handle_event(event, content, state, data)`` returns ``NextState``, ``KeepState`` or ``Stop``;
then its actions run in list order:

* ``ReplyAction(caller, value)`` answers a call (or use ``caller.reply(value)``);
* ``Postpone()`` keeps the current event until the state changes, then it is re-delivered;
* ``NextEvent(type, content)`` inserts an event to be handled before anything else;
* ``StateTimeout(delay, content)`` fires ``STATE_TIMEOUT`` unless the state changes first;
* ``EventTimeout(delay, content)`` fires ``EVENT_TIMEOUT`` unless any event comes first (it is not
  started at all when events are already queued);
* ``GenericTimeout(name, delay, content)`` fires the event ``GenericTimeout(name, ...)`` itself;
  neither state changes nor events cancel it; setting the same name again restarts it.

A delay of ``None`` cancels that timeout; a timeout set again replaces the running one. With
``state_enter = True``, every state change (and the initial state) first calls
``handle_event(Enter(old_state), None, state, data)``; it may not change state, postpone or insert
events (it may set timeouts and reply).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar, Generic

import trio

from ._call import Caller, _Cast, _System, is_system
from ._errors import OTPError
from ._gen_server import NO_REPLY, NOOP_TERMINATES, Stop, terminate_shielded
from ._messages import exit_reason_of
from ._pid import ExitReason, Pid, TimerRef
from ._process import _Process, node
from ._statem_types import (
    CAST,
    EVENT_TIMEOUT,
    INFO,
    STATE_TIMEOUT,
    Action,
    Call,
    D,
    Enter,
    Event,
    EventTimeout,
    GenericTimeout,
    KeepState,
    NextEvent,
    NextState,
    Postpone,
    ReplyAction,
    St,
    StateTimeout,
)
from ._sys import handle_system

log = logging.getLogger("switchd.otp")

class _Fired:
    """A timeout's message, put in the mailbox by the process's own timer."""

    __slots__ = ("content", "event")

    def __init__(self, event: Any, content: Any) -> None:
        self.event = event
        self.content = content


class StateMachine(Generic[St, D]):
    """A gen_statem: subclass it, define init/handle_event, start with ``start_link`` as a GenServer.

    ``call``, ``cast``, ``send`` and the sys functions work on it as on a GenServer; ``get_state``
    returns ``(state, data)``.

    Class attributes:
    ``state_enter``: call ``handle_event(Enter(old), None, state, data)`` on each state change, False.
    ``kind``: the kind ``processes()`` shows, ``"statem"``.
    ``vsn``: the code version handed to the next class's ``code_change``, None.
    """

    state_enter: ClassVar[bool] = False
    kind: ClassVar[str] = "statem"
    vsn: ClassVar[Any] = None

    async def init(self, *args: Any) -> tuple[St, D] | tuple[St, D, Sequence[Action]]:
        """The initial ``(state, data)`` or ``(state, data, actions)``; raising fails the start."""
        raise NotImplementedError(f"{type(self).__name__} does not define init()")

    async def handle_event(self, event: Event, content: Any, state: St,
                           data: D) -> NextState[St, D] | KeepState[D] | Stop[D]:
        """Handle one event; see the module docstring for the event types and actions."""
        raise NotImplementedError(f"{type(self).__name__} does not define handle_event()")

    async def terminate(self, reason: ExitReason, state: St, data: D) -> None:
        """Clean up before exiting; runs shielded, bounded by the shutdown timeout."""

    async def code_change(self, old_vsn: Any, state: St, data: D, extra: Any) -> tuple[St, D]:
        """Called on the NEW class by ``change_code``; the default keeps state and data."""
        return state, data

    def format_status(self, state: St, data: D) -> str:
        """One line of status for ``processes()``; the default is the state."""
        return f"state={state!r}"

    @classmethod
    async def start_link(cls, *args: Any, name: str | None = None,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """As ``GenServer.start_link``: started(pid) once init (and the initial enter call) succeeded."""
        n = node()
        proc = n.spawn(cls.kind, name)
        impl = cls()
        proc.behaviour = impl
        engine = _Engine(proc, impl)
        try:
            await engine.start(args)
        except BaseException as exc:
            n.exit(proc, exit_reason_of(proc, exc))
            raise
        task_status.started(proc.pid)
        await engine.run()


NOOP_TERMINATES.add(StateMachine.terminate)


class _Engine:
    """The gen_statem loop state of one process (the queue, postponed list and generic timeout
    table are made on first use: most call sessions idle with none of them)."""

    __slots__ = ("data", "event_timer", "generic", "impl", "postponed", "proc", "queue", "state",
                 "state_timer")

    def __init__(self, proc: _Process, impl: StateMachine[Any, Any]) -> None:
        self.proc = proc
        self.impl = impl
        self.state: Any = None
        self.data: Any = None
        self.queue: deque[tuple[Any, Any]] | None = None
        self.postponed: list[tuple[Any, Any]] | None = None
        self.state_timer: TimerRef | None = None
        self.event_timer: TimerRef | None = None
        self.generic: dict[str, TimerRef] | None = None

    async def start(self, args: tuple[Any, ...]) -> None:
        result = await self.impl.init(*args)
        if len(result) == 3:
            state, data, actions = result
        else:
            state, data = result
            actions = ()
        self.state, self.data = state, data
        stop = await self._transition(None, None, state, data, actions, initial=True)
        if stop is not None:
            raise OTPError(f"{type(self.impl).__name__}: init's enter call stopped with {stop!r}")
        self._publish()

    def _publish(self) -> None:
        self.proc.state = (self.state, self.data)

    async def run(self) -> None:
        proc = self.proc
        reason: ExitReason = "normal"
        try:
            while True:
                queue = self.queue
                if queue:
                    event, content = queue.popleft()
                    if not queue:
                        self.queue = None
                else:
                    if proc.suspended:  # the mailbox loop of _process inline, as in the GenServer loop
                        msg = await proc.receive(is_system, None)
                    else:
                        if not proc.ready():
                            await proc.park()
                            continue
                        await proc.pace()
                        msg = proc.take()
                    kind = type(msg)
                    if kind is Caller:
                        assert isinstance(msg, Caller)
                        event, content = Call(msg), msg.request
                    elif kind is _Cast:
                        assert isinstance(msg, _Cast)
                        event, content = CAST, msg.request
                    elif kind is _Fired:
                        assert isinstance(msg, _Fired)
                        if not self._claim(msg):
                            continue  # a timeout cancelled after it fired: dropped
                        event, content = msg.event, msg.content
                    elif kind is _System:
                        assert isinstance(msg, _System)
                        stop_reason = await self._system(msg)
                        if stop_reason is not None:
                            reason = stop_reason
                            break
                        continue
                    else:
                        event, content = INFO, msg
                if self.event_timer is not None and event is not EVENT_TIMEOUT:
                    proc.cancel_timer(self.event_timer)
                    self.event_timer = None
                stop = await self._handle(event, content)
                self._publish()
                if stop is not None:
                    reason = stop
                    break
        except BaseException as exc:
            reason = exit_reason_of(proc, exc)
            await terminate_shielded(proc, self.impl.terminate, reason, self.state, self.data)
            proc.node.exit(proc, reason)
            raise
        await terminate_shielded(proc, self.impl.terminate, reason, self.state, self.data)
        proc.node.exit(proc, reason)
        if isinstance(reason, BaseException):
            raise reason

    def _claim(self, msg: _Fired) -> bool:
        """True if `msg` is the live timeout it claims to be (then it is no longer armed)."""
        event = msg.event
        if event is STATE_TIMEOUT:
            timer, self.state_timer = self.state_timer, None
        elif event is EVENT_TIMEOUT:
            timer, self.event_timer = self.event_timer, None
        else:
            generic = self.generic
            timer = generic.get(event.name) if generic is not None else None
            if generic is not None and timer is not None and timer.msg is msg:
                del generic[event.name]
        if timer is None or timer.msg is not msg:
            if timer is not None:  # a newer timer of that kind is armed: put it back
                self._rearm(event, timer)
            return False
        return True

    def _rearm(self, event: Any, timer: TimerRef) -> None:
        if event is STATE_TIMEOUT:
            self.state_timer = timer
        elif event is EVENT_TIMEOUT:
            self.event_timer = timer

    async def _handle(self, event: Any, content: Any) -> ExitReason | None:
        result: Any = await self.impl.handle_event(event, content, self.state, self.data)
        kind = type(result)
        if kind is NextState:
            return await self._transition(event, content, result.state, result.data, result.actions)
        if kind is KeepState:
            return await self._transition(event, content, self.state, result.data, result.actions)
        if kind is Stop:
            self.data = result.state
            if result.reply is not NO_REPLY and isinstance(event, Call):
                event.caller.reply(result.reply)
            return result.reason  # type: ignore[no-any-return]
        raise TypeError(f"{type(self.impl).__name__}.handle_event returned {result!r}, "
                        "not NextState, KeepState or Stop")

    async def _transition(self, event: Any, content: Any, new_state: Any, data: Any,
                          actions: Sequence[Action], *, initial: bool = False) -> ExitReason | None:
        old_state = self.state
        changed = initial or new_state != old_state
        self.state, self.data = new_state, data
        inserted: list[tuple[Any, Any]] = []
        timeouts: list[StateTimeout | EventTimeout | GenericTimeout] = []
        for action in actions:
            if isinstance(action, Postpone):
                if initial or isinstance(event, Enter):
                    raise OTPError(f"{type(self.impl).__name__}: Postpone is not allowed here")
                if self.postponed is None:
                    self.postponed = []
                self.postponed.append((event, content))
            elif isinstance(action, NextEvent):
                inserted.append((action.type, action.content))
            else:
                self._act(action, timeouts)
        if changed and not initial:
            if self.state_timer is not None:
                self.proc.cancel_timer(self.state_timer)
                self.state_timer = None
            if self.postponed:
                self._insert(self.postponed)
                self.postponed = None
        if inserted:
            self._insert(inserted)
        if changed and self.impl.state_enter:
            stop = await self._enter(old_state if not initial else new_state, timeouts)
            if stop is not None:
                return stop
        for timeout in timeouts:
            self._arm(timeout)
        return None

    def _insert(self, events: list[tuple[Any, Any]]) -> None:
        """Put `events` first in the queue, in their order."""
        if self.queue is None:
            self.queue = deque(events)
        else:
            self.queue.extendleft(reversed(events))

    async def _enter(self, old_state: Any, timeouts: list[StateTimeout | EventTimeout | GenericTimeout]
                     ) -> ExitReason | None:
        state = self.state
        result: Any = await self.impl.handle_event(Enter(old_state), None, state, self.data)
        kind = type(result)
        if kind is Stop:
            self.data = result.state
            return result.reason  # type: ignore[no-any-return]
        if kind is NextState and result.state != state:
            raise OTPError(f"{type(self.impl).__name__}: an enter call may not change the state "
                           f"({state!r} -> {result.state!r})")
        if kind is not NextState and kind is not KeepState:
            raise TypeError(f"{type(self.impl).__name__}.handle_event(Enter) returned {result!r}")
        self.data = result.data
        for action in result.actions:
            if isinstance(action, (Postpone, NextEvent)):
                raise OTPError(f"{type(self.impl).__name__}: an enter call may not "
                               f"{type(action).__name__}")
            self._act(action, timeouts)
        return None

    def _act(self, action: Action, timeouts: list[StateTimeout | EventTimeout | GenericTimeout]) -> None:
        if isinstance(action, ReplyAction):
            action.caller.reply(action.value)
        elif isinstance(action, (StateTimeout, EventTimeout, GenericTimeout)):
            timeouts.append(action)
        else:
            raise TypeError(f"{type(self.impl).__name__}: unknown action {action!r}")

    def _arm(self, timeout: StateTimeout | EventTimeout | GenericTimeout) -> None:
        proc = self.proc
        if isinstance(timeout, StateTimeout):
            if self.state_timer is not None:
                proc.cancel_timer(self.state_timer)
                self.state_timer = None
            if timeout.delay is not None:
                self.state_timer = proc.add_timer(timeout.delay, _Fired(STATE_TIMEOUT, timeout.content))
        elif isinstance(timeout, EventTimeout):
            if self.event_timer is not None:
                proc.cancel_timer(self.event_timer)
                self.event_timer = None
            if timeout.delay is not None and not self.queue and not proc.mailbox:
                self.event_timer = proc.add_timer(timeout.delay, _Fired(EVENT_TIMEOUT, timeout.content))
        else:
            if self.generic is None:
                self.generic = {}
            old = self.generic.get(timeout.name)
            if (timeout.absolute and old is not None and old.active and old.deadline == timeout.delay
                    and old.msg.event == timeout):  # type: ignore[attr-defined]
                return  # the same deadline again: the armed timer stands
            if old is not None:
                del self.generic[timeout.name]
                proc.cancel_timer(old)
            if timeout.delay is not None:
                fired = _Fired(timeout, timeout.content)
                self.generic[timeout.name] = (proc.add_timer_at(timeout.delay, fired) if timeout.absolute
                                              else proc.add_timer(timeout.delay, fired))

    async def _system(self, msg: _System) -> ExitReason | None:
        impl, pair, stop = await handle_system(self.proc, msg, self.impl, (self.state, self.data),
                                               _code_change)
        self.impl = impl
        self.state, self.data = pair
        self._publish()
        return stop


async def _code_change(new_impl: StateMachine[Any, Any], old_vsn: Any, pair: tuple[Any, Any],
                       extra: Any) -> tuple[Any, Any]:
    state, data = pair
    return await new_impl.code_change(old_vsn, state, data, extra)
