"""Plain processes and messages: Process.start_link, self_pid, send, receive, monitor, timers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ._errors import ReceiveTimeout
from ._pid import Down, ExitReason, MonitorRef, Pid, TimerRef
from ._process import _Process, node


def self_pid() -> Pid:
    """The pid of the process the calling task runs; raises NoProcess outside a process."""
    return node().current().pid


def is_process_alive(pid: Pid) -> bool:
    """True while the process `pid` has not exited."""
    return pid._proc.alive


def send(dest: Pid | str, msg: object) -> None:
    """Put `msg` in `dest`'s mailbox; never blocks.

    To a pid that exited: dropped, as in Erlang. To a name nobody registered: raises NoProcess.
    """
    if type(dest) is Pid:
        dest._proc.deliver(msg)
    else:
        node().resolve(dest).deliver(msg)


def set_inline_handler(handler: Callable[[object], bool] | None) -> None:
    """Let `handler` take the current process's messages in the sender's task, without a task switch.

    While set, a message sent to this process whose mailbox is empty (and that is not suspended)
    is first offered to ``handler(msg)``, called at once inside `send` by the sender; when it
    returns True the message is handled and never reaches the mailbox, otherwise it is delivered as
    usual. So order is kept: nothing is handled inline while older messages wait in the mailbox.
    For work that needs neither the process's own task nor its state beyond what `handler` holds,
    never blocks and never raises (e.g. a connection's `write`): it runs in another process's task,
    where ``self_pid()`` is the sender. A handler that raises is logged and the message goes to the
    mailbox. None removes it; it is removed when the process exits. Erlang has no such thing: it is
    how a port's writes avoid a scheduler round trip per message here (docs/otp.md).
    """
    node().current().inline = handler


async def receive(timeout: float | None = None, *,
                  match: Callable[[object], bool] | None = None) -> object:
    """The oldest message in the current process's mailbox that `match` accepts (any when None).

    Messages `match` rejects stay in the mailbox, in order (Erlang's selective receive). Waits up
    to `timeout` seconds (forever when None) and then raises ReceiveTimeout. Only a process's own
    task may receive; elsewhere raises NoProcess.
    """
    proc = node().current()
    deadline = None if timeout is None else trio.current_time() + timeout
    try:
        return await proc.receive(match, deadline)
    except trio.TooSlowError:
        raise ReceiveTimeout(f"{proc.pid}: no matching message within {timeout:g}s") from None


def monitor(target: Pid | str) -> MonitorRef:
    """Watch `target` from the current process: a ``Down(ref, pid, reason)`` arrives when it exits.

    Monitoring a pid that already exited delivers ``Down`` with reason ``"noproc"`` at once; an
    unregistered name raises NoProcess. Monitors are one-way and stack: two calls, two Downs.
    """
    n = node()
    watcher = n.current()
    proc = n.resolve(target)
    ref = MonitorRef(n.next_ref(), watcher, proc)
    if not proc.alive:
        watcher.deliver(Down(ref, proc.pid, "noproc"))
        return ref
    if proc.monitors is None:
        proc.monitors = {}
    proc.monitors[ref] = watcher
    if watcher.watching is None:
        watcher.watching = {}
    watcher.watching[ref] = None
    return ref


def demonitor(ref: MonitorRef, *, flush: bool = False) -> None:
    """Stop watching; with `flush`, also drop that monitor's ``Down`` if it already arrived."""
    target = ref.target
    if target is not None and target.monitors is not None:
        target.monitors.pop(ref, None)
    watcher = ref.watcher
    if watcher.watching is not None:
        watcher.watching.pop(ref, None)
    if flush and watcher.mailbox:
        for index, msg in enumerate(watcher.mailbox):
            if type(msg) is Down and msg.ref is ref:
                del watcher.mailbox[index]
                break


def send_after(dest: Pid | str, msg: object, delay: float) -> TimerRef:
    """Deliver `msg` to `dest` after `delay` seconds; returns a ref for cancel_timer.

    A name is resolved now (NoProcess if unregistered), not when the timer fires. The timer belongs
    to the destination: it is dropped if the destination exits first.
    """
    return node().resolve(dest).add_timer(delay, msg)


def cancel_timer(ref: TimerRef) -> bool:
    """Cancel a send_after timer; True when it was still pending (so its message will not come)."""
    return ref._proc.cancel_timer(ref)


def exit_reason_of(proc: _Process, exc: BaseException) -> ExitReason:
    """The exit reason for a process body that raised `exc`."""
    if proc.exit_hint is not None:
        return proc.exit_hint
    if isinstance(exc, trio.Cancelled):
        return "shutdown"
    if isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None:
        return "shutdown"  # only cancellations, from the process's own nurseries
    return exc


class Process:
    """A plain process: an async function run as a process with a mailbox.

    ``await nursery.start(Process.start_link, fn, *args)`` hands back the pid once the process
    exists; with a registered name, ``nursery.start(partial(Process.start_link, fn, *args, name="x"))``
    (``nursery.start`` keeps ``name=`` for the task). `fn(*args)` then runs inside it and may call
    ``receive``, ``self_pid``, ``monitor``. Returning exits ``"normal"``; raising exits with the
    exception (which propagates to the parent nursery, like an Erlang link); cancellation exits
    ``"shutdown"``.
    """

    @staticmethod
    async def start_link(fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        n = node()
        proc = n.spawn("process", name)
        task_status.started(proc.pid)
        reason: ExitReason = "normal"
        try:
            await fn(*args)
        except BaseException as exc:
            reason = exit_reason_of(proc, exc)
            raise
        finally:
            n.exit(proc, reason)


