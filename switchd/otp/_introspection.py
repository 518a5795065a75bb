"""Introspection: every live process as a ProcessInfo, and the supervision tree as nested data.

This is what ``switchd top`` and ``GET /tree`` render. Both are plain functions reading the node's
tables: they never message a process, so a busy or suspended process does not delay them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._pid import Pid
from ._process import _Process, node
from ._state_machine import StateMachine


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One live process.

    ``kind``: "supervisor", "gen_server", "statem", "event_manager" or "process".
    ``parent``: the nearest process above it (its supervisor), None for a root.
    ``child_id``: its id in its supervisor's child specs, if supervised.
    ``restarts``: how often its supervisor restarted this child before this incarnation.
    ``started_at``: ``trio.current_time()`` when it was spawned.
    ``status``: one line, from the behaviour's ``format_status`` ("suspended" while suspended).
    """

    pid: Pid
    name: str | None
    kind: str
    parent: Pid | None
    child_id: str | None
    restarts: int
    mailbox_depth: int
    started_at: float
    status: str


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A process and the processes it started (a supervisor's children), in start order."""

    info: ProcessInfo
    children: tuple[TreeNode, ...]


def _status(proc: _Process) -> str:
    if proc.suspended:
        return "suspended"
    behaviour = proc.behaviour
    if behaviour is None:
        return "waiting" if proc._waiter is not None else "running"
    try:
        if isinstance(behaviour, StateMachine) and isinstance(proc.state, tuple):  # whatever its kind says
            return str(behaviour.format_status(*proc.state))
        if proc.kind == "supervisor":
            return str(behaviour.format_status())
        return str(behaviour.format_status(proc.state))
    except Exception as exc:  # noqa: BLE001 - a status line must never break a listing
        return f"format_status failed: {exc!r}"


def _info(proc: _Process) -> ProcessInfo:
    parent = proc.parent
    return ProcessInfo(
        pid=proc.pid, name=proc.name, kind=proc.kind,
        parent=parent.pid if parent is not None else None, child_id=proc.child_id,
        restarts=proc.restarts, mailbox_depth=proc.mailbox_depth(), started_at=proc.started_at,
        status=_status(proc),
    )


def processes() -> list[ProcessInfo]:
    """Every live process of this trio run, oldest first."""
    return [_info(proc) for proc in node().processes.values()]


def process_info(pid: Pid) -> ProcessInfo | None:
    """The ProcessInfo of `pid`, or None when it is not alive."""
    proc = pid._proc
    return _info(proc) if proc.alive else None


def tree() -> list[TreeNode]:
    """The live processes as trees: each root (a process with no live parent) with its descendants."""
    procs = list(node().processes.values())
    kids: dict[_Process, list[_Process]] = {}
    roots: list[_Process] = []
    for proc in procs:
        parent = proc.parent
        if parent is not None and parent.alive:
            kids.setdefault(parent, []).append(proc)
        else:
            roots.append(proc)

    def build(proc: _Process) -> TreeNode:
        return TreeNode(_info(proc), tuple(build(k) for k in kids.get(proc, ())))

    return [build(root) for root in roots]
