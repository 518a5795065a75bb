"""Child specifications and supervisor flags: what a supervisor starts, and how it restarts them."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ._pid import Pid


class Restart(StrEnum):
    """When a child that exited is restarted."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after an abnormal exit (not "normal"/"shutdown")
    TEMPORARY = "temporary"  # never; its exit, crash or not, never counts toward restart intensity


class ChildType(StrEnum):
    """Whether a child is a worker or a supervisor (shown by which_children/count_children)."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


class Strategy(StrEnum):
    """What a Supervisor restarts when one child exits and must be restarted."""

    ONE_FOR_ONE = "one_for_one"    # that child only
    ONE_FOR_ALL = "one_for_all"    # all children: the others are shut down (reverse order), then all restart
    REST_FOR_ONE = "rest_for_one"  # that child and the ones started after it


class BrutalKill(enum.Enum):
    """The type of BRUTAL_KILL."""

    BRUTAL_KILL = "brutal_kill"


BRUTAL_KILL = BrutalKill.BRUTAL_KILL
"""``ChildSpec.shutdown`` value: cancel the child at once, without running its ``terminate``."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How a supervisor starts and treats one child.

    ``id``: the child's name within its supervisor (which_children, terminate_child, reports).
    ``start``: an async function called as ``start(task_status=...)`` that calls
    ``task_status.started(pid)`` once ready and then runs the child, e.g.
    ``partial(Router.start_link, table, name="router")``.
    ``restart``: ``Restart``; None (the default) means the supervisor's default — PERMANENT under a
    Supervisor, TEMPORARY under a DynamicSupervisor.
    ``shutdown``: seconds the child gets to finish ``terminate`` when shut down, 5.0; or BRUTAL_KILL.
    ``type``: ``ChildType.WORKER`` (default) or ``ChildType.SUPERVISOR``; give a supervisor child a
    shutdown long enough for its own children's (e.g. ``math.inf``).
    """

    id: str
    start: Callable[..., Awaitable[Any]]
    restart: Restart | None = None
    shutdown: float | BrutalKill = 5.0
    type: ChildType = ChildType.WORKER


@dataclass(frozen=True, slots=True)
class SupervisorFlags:
    """A Supervisor's strategy and restart intensity.

    ``strategy``: ``Strategy.ONE_FOR_ONE`` (default), ONE_FOR_ALL or REST_FOR_ONE.
    ``max_restarts``: restarts allowed within ``max_seconds``, over all children together, 3; one
    more and the supervisor shuts every child down (reverse order) and raises SupervisorGaveUp.
    ``max_seconds``: the window for ``max_restarts``, 5.0.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    max_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of ``which_children``: `pid` is None for a child that is not running."""

    id: str
    pid: Pid | None
    type: ChildType
    restart: Restart
    restarts: int


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """``count_children``: specs known, children running, and how many are supervisors / workers."""

    specs: int
    active: int
    supervisors: int
    workers: int
