"""GenServer: the gen_server behaviour as a class, its return values, and its server loop.

The loop takes one message at a time from the mailbox: a ``Caller`` goes to ``handle_call``, a cast
envelope to ``handle_cast``, a system message to the sys handler, anything else to ``handle_info``.
``terminate(reason, state)`` runs on every way out — ``Stop``, a crash, and cancellation by the
supervisor (or parent nursery) — shielded from cancellation and bounded by the child's shutdown
timeout (5 s when no supervisor set one); a ``BRUTAL_KILL`` shutdown skips it, as in OTP.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import trio

from ._call import Caller, _Cast, _System, is_system
from ._messages import exit_reason_of
from ._pid import ExitReason, Pid
from ._process import _Process, node
from ._sys import handle_system

log = logging.getLogger("switchd.otp")

S = TypeVar("S")


class _Missing(enum.Enum):
    MISSING = enum.auto()


NO_REPLY = _Missing.MISSING


@dataclass(frozen=True, slots=True)
class Reply(Generic[S]):
    """``handle_call`` result: answer ``value`` and continue with ``state`` (``{reply, V, S}``)."""

    value: Any
    state: S


@dataclass(frozen=True, slots=True)
class NoReply(Generic[S]):
    """Continue with ``state`` without answering (``{noreply, S}``); answer later with ``reply``."""

    state: S


@dataclass(frozen=True, slots=True)
class Stop(Generic[S]):
    """Stop with ``reason`` after ``terminate(reason, state)``; in handle_call, ``reply`` (if given)
    answers the caller first (``{stop, Why, Reply, S}``). An exception as reason is raised as a crash.
    """

    reason: ExitReason
    state: S
    reply: Any = NO_REPLY


class GenServer(Generic[S]):
    """A gen_server: subclass it, define the callbacks, start it with ``start_link``.

    The class is instantiated with no arguments by ``start_link``; all state lives in ``state``,
    which every callback receives and returns (so ``change_code`` can swap the class under it).

    Class attributes:
    ``kind``: the kind ``processes()`` shows, ``"gen_server"``.
    ``vsn``: the code version handed to the next class's ``code_change`` as ``old_vsn``, None.
    """

    kind: ClassVar[str] = "gen_server"
    vsn: ClassVar[Any] = None

    async def init(self, *args: Any) -> S:
        """The initial state from ``start_link``'s arguments; raising fails the start."""
        raise NotImplementedError(f"{type(self).__name__} does not define init()")

    async def handle_call(self, request: Any, caller: Caller, state: S) -> Reply[S] | NoReply[S] | Stop[S]:
        """Answer a ``call``; the default crashes the server, as Elixir's does."""
        raise NotImplementedError(f"{type(self).__name__} got call {request!r} but defines no handle_call()")

    async def handle_cast(self, request: Any, state: S) -> NoReply[S] | Stop[S]:
        """Handle a ``cast``; the default crashes the server."""
        raise NotImplementedError(f"{type(self).__name__} got cast {request!r} but defines no handle_cast()")

    async def handle_info(self, msg: Any, state: S) -> NoReply[S] | Stop[S]:
        """Handle any other message (``Down``, timers, ``send``); the default logs and drops it."""
        log.warning("%s got an unexpected message %r", type(self).__name__, msg,
                    extra={"server": type(self).__name__})
        return NoReply(state)

    async def terminate(self, reason: ExitReason, state: S) -> None:
        """Clean up before exiting; runs shielded, bounded by the shutdown timeout."""

    async def code_change(self, old_vsn: Any, state: S, extra: Any) -> S:
        """Called on the NEW class by ``change_code``: convert the old state; the default keeps it."""
        return state

    def format_status(self, state: S) -> str:
        """One line of status for ``processes()`` and ``tree()``."""
        return "running"

    @classmethod
    async def start_link(cls, *args: Any, name: str | None = None,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        """Run a server of this class in the calling task: ``await nursery.start(Cls.start_link, ...)``.

        `name` is registered before ``init(*args)`` runs; ``task_status.started(pid)`` is called only
        once init succeeded. Raises AlreadyRegistered, or whatever init raised (the start fails).
        """
        n = node()
        proc = n.spawn(cls.kind, name)
        impl = cls()
        proc.behaviour = impl
        try:
            state = await impl.init(*args)
        except BaseException as exc:
            n.exit(proc, exit_reason_of(proc, exc))
            raise
        proc.state = state
        task_status.started(proc.pid)
        await _serve(proc, impl, state)


async def _code_change(new_impl: GenServer[Any], old_vsn: Any, state: Any, extra: Any) -> Any:
    return await new_impl.code_change(old_vsn, state, extra)


async def _serve(proc: _Process, impl: GenServer[Any], state: Any) -> None:
    reason: ExitReason = "normal"
    try:
        while True:
            # The mailbox loop of _process (ready, pace, take; park) inline: no frame per parked server.
            if proc.suspended:
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
                result: Any = await impl.handle_call(msg.request, msg, state)
                rkind = type(result)
                if rkind is Reply:
                    msg.reply(result.value)
                elif rkind is Stop:
                    if result.reply is not NO_REPLY:
                        msg.reply(result.reply)
                elif rkind is not NoReply:
                    raise TypeError(f"{type(impl).__name__}.handle_call returned {result!r}, "
                                    "not Reply, NoReply or Stop")
            elif kind is _Cast:
                assert isinstance(msg, _Cast)
                result = await impl.handle_cast(msg.request, state)
                rkind = type(result)
                if rkind is not NoReply and rkind is not Stop:
                    raise TypeError(f"{type(impl).__name__}.handle_cast returned {result!r}, "
                                    "not NoReply or Stop")
            elif kind is _System:
                assert isinstance(msg, _System)
                impl, state, stop_reason = await handle_system(proc, msg, impl, state, _code_change)
                proc.state = state
                if stop_reason is not None:
                    reason = stop_reason
                    break
                continue
            else:
                result = await impl.handle_info(msg, state)
                rkind = type(result)
                if rkind is not NoReply and rkind is not Stop:
                    raise TypeError(f"{type(impl).__name__}.handle_info returned {result!r}, "
                                    "not NoReply or Stop")
            state = proc.state = result.state
            if rkind is Stop:
                reason = result.reason
                break
    except BaseException as exc:
        reason = exit_reason_of(proc, exc)
        await terminate_shielded(proc, impl.terminate, reason, state)
        proc.node.exit(proc, reason)
        raise
    await terminate_shielded(proc, impl.terminate, reason, state)
    proc.node.exit(proc, reason)
    if isinstance(reason, BaseException):
        raise reason


NOOP_TERMINATES: set[object] = {GenServer.terminate}


async def terminate_shielded(proc: _Process, terminate: Any, reason: ExitReason, *state: Any) -> None:
    """Run ``terminate(reason, *state)`` shielded and bounded by the process's shutdown timeout.

    Skipped after a BRUTAL_KILL (reason ``"killed"``). An exception in terminate is logged; the
    process still exits with `reason`.
    """
    if reason == "killed" or getattr(terminate, "__func__", None) in NOOP_TERMINATES:
        return  # nothing to run: skip the shielded scope (this is the hot path of short-lived servers)
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + proc.shutdown_timeout
        try:
            await terminate(reason, *state)
        except Exception:
            log.exception("%s: terminate(%r) raised", proc.pid, reason,
                          extra={"pid": str(proc.pid), "reason": repr(reason)})
    if scope.cancelled_caught:
        log.warning("%s: terminate(%r) did not finish within its shutdown timeout of %gs",
                    proc.pid, reason, proc.shutdown_timeout,
                    extra={"pid": str(proc.pid), "reason": repr(reason)})
