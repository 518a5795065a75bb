"""Identities and exit reasons: Pid, MonitorRef, TimerRef, Down, ExitReason.

An exit reason is what a process died of, as in Erlang:

* ``"normal"``   it returned, or was stopped with reason ``"normal"``;
* ``"shutdown"`` its supervisor (or parent nursery) shut it down by cancellation;
* ``"killed"``   it was shut down with ``BRUTAL_KILL`` (its ``terminate`` did not run);
* ``"noproc"``   (only in ``Down``) the monitored process was not alive when ``monitor`` was called;
* any other ``str`` given to ``Stop(reason, ...)``/``stop(...)``: an abnormal exit;
* an exception instance: the process crashed with it.

Only ``"normal"`` and ``"shutdown"`` count as normal for a TRANSIENT child's restart decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from ._process import _Process

ExitReason: TypeAlias = str | BaseException

NORMAL_REASONS = frozenset({"normal", "shutdown"})


def is_normal(reason: ExitReason) -> bool:
    """True for the exit reasons a TRANSIENT child is not restarted for (``normal``, ``shutdown``)."""
    return isinstance(reason, str) and reason in NORMAL_REASONS


class Pid:
    """A process identity; immutable, hashable, printed as ``<0.42.0>``.

    A Pid stays valid after its process exited: sending to it drops the message, as in Erlang.
    """

    __slots__ = ("__weakref__", "_n", "_proc")
    _n: int
    _proc: _Process

    def __init__(self, number: int, proc: _Process) -> None:
        object.__setattr__(self, "_n", number)
        object.__setattr__(self, "_proc", proc)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Pid is immutable (tried to set {name!r})")

    @property
    def number(self) -> int:
        """The serial number of the process in this node (the 42 in ``<0.42.0>``)."""
        return self._n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pid) and other._proc is self._proc

    def __hash__(self) -> int:
        return self._n

    def __lt__(self, other: Pid) -> bool:
        return self._n < other._n

    def __str__(self) -> str:
        return f"<0.{self._n}.0>"

    def __repr__(self) -> str:
        return f"Pid({self})"


class MonitorRef:
    """A monitor's reference; the ``ref`` of the ``Down`` message it produces."""

    __slots__ = ("_n", "target", "watcher")

    def __init__(self, number: int, watcher: _Process, target: _Process | None) -> None:
        self._n = number
        self.watcher = watcher
        self.target = target

    def __repr__(self) -> str:
        return f"MonitorRef(#{self._n})"


class TimerRef:
    """A ``send_after`` timer; pass it to ``cancel_timer``."""

    __slots__ = ("_n", "_proc", "active", "deadline", "msg")

    def __init__(self, number: int, deadline: float, msg: object, proc: _Process) -> None:
        self._n = number
        self.deadline = deadline
        self.msg = msg
        self.active = True
        self._proc = proc

    def __lt__(self, other: TimerRef) -> bool:
        return (self.deadline, self._n) < (other.deadline, other._n)

    def __repr__(self) -> str:
        return f"TimerRef(#{self._n}, deadline={self.deadline:g}, active={self.active})"


@dataclass(frozen=True, slots=True)
class Down:
    """The message a monitor delivers when its target exits: ``reason`` is the target's exit reason."""

    ref: MonitorRef
    pid: Pid
    reason: ExitReason
