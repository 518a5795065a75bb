"""sys-style operations on a running behaviour: stop, get_state, replace_state, suspend, resume,
change_code — and the handler every behaviour's loop runs for them.

System messages are handled in mailbox order like any message, and also while the process is
suspended (a suspended process handles nothing else; other messages wait in its mailbox).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._call import _Raised, _System, system_call
from ._errors import OTPError, ServerExited
from ._pid import ExitReason, Pid
from ._process import _Process

T = TypeVar("T")


CodeChange = Callable[[Any, Any, Any, Any], Awaitable[Any]]  # (new_impl, old_vsn, state, extra) -> state


async def handle_system(proc: _Process, msg: _System, impl: Any, state: Any,
                        code_change: CodeChange) -> tuple[Any, Any, ExitReason | None]:
    """Run system message `msg`; returns the (maybe new) callback object, state, and a stop reason."""
    op, caller = msg.op, msg.caller
    if op == "stop":
        return impl, state, msg.arg  # the caller is answered by the exit itself
    if op == "get_state":
        caller.reply(state)
    elif op == "replace_state":
        try:
            state = msg.arg(state)
        except Exception as exc:  # noqa: BLE001 - raised in the caller, not the server
            caller.reply(_Raised(exc))
        else:
            caller.reply(state)
    elif op == "suspend":
        proc.suspended = True
        caller.reply(None)
    elif op == "resume":
        proc.suspended = False
        caller.reply(None)
    elif op == "change_code":
        new_class, old_vsn, extra = msg.arg
        new_impl = new_class()
        try:
            state = await code_change(new_impl, impl.vsn if old_vsn is None else old_vsn, state, extra)
        except Exception as exc:  # noqa: BLE001 - the server keeps its old code
            caller.reply(_Raised(exc))  # the server keeps its old code and state, as sys does
        else:
            impl = proc.behaviour = new_impl
            caller.reply(None)
    else:
        caller.reply(_Raised(OTPError(f"{proc.pid}: unknown system operation {op!r}")))
    return impl, state, None


async def _sys(dest: Pid | str, op: str, arg: Any = None, *, timeout: float) -> Any:
    return await system_call(dest, op, arg, timeout=timeout)


async def stop(dest: Pid | str, reason: ExitReason = "normal", *, timeout: float = 5.0) -> None:
    """Stop the behaviour `dest` with `reason`: its ``terminate`` runs, then it exits; returns once it
    has exited (its name is free again). Raises CallTimeout, NoProcess, NotABehaviour."""
    try:
        await system_call(dest, "stop", reason, timeout=timeout)
    except ServerExited as exc:
        if exc.reason is reason or exc.reason == reason:
            return
        raise


async def get_state(dest: Pid | str, *, timeout: float = 5.0) -> Any:
    """The behaviour's current state (a StateMachine's is the pair ``(state, data)``)."""
    return await _sys(dest, "get_state", timeout=timeout)


async def replace_state(dest: Pid | str, fn: Callable[[T], T], *, timeout: float = 5.0) -> T:
    """Replace the state with ``fn(state)`` inside the server; returns the new state.

    If `fn` raises, the state is unchanged and the exception is raised here.
    """
    result: T = await _sys(dest, "replace_state", fn, timeout=timeout)
    return result


async def suspend(dest: Pid | str, *, timeout: float = 5.0) -> None:
    """Suspend the behaviour: it handles only system messages until ``resume``; others queue."""
    await _sys(dest, "suspend", timeout=timeout)


async def resume(dest: Pid | str, *, timeout: float = 5.0) -> None:
    """Resume a suspended behaviour; the messages that queued meanwhile are handled in order."""
    await _sys(dest, "resume", timeout=timeout)


async def change_code(dest: Pid | str, new_class: type[Any], extra: Any = None, *,
                      old_vsn: Any = None, timeout: float = 5.0) -> None:
    """Hot code swap: ``new_class().code_change(old_vsn, state, extra)`` runs in the server, which
    then runs `new_class`'s callbacks with the state it returned.

    The swap is atomic in mailbox order (the server handles nothing else meanwhile), so the server
    need not be suspended first; if it is, it stays suspended. `old_vsn` defaults to the running
    class's ``vsn``. If code_change raises, the server keeps its old class and state, and the
    exception is raised here.
    """
    await _sys(dest, "change_code", (new_class, old_vsn, extra), timeout=timeout)
