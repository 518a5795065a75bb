"""DynamicSupervisor: children started at run time, one_for_one, TEMPORARY unless their spec says."""

from __future__ import annotations

import trio

from ._child_spec import Strategy, SupervisorFlags
from ._pid import Pid
from ._supervisor import _Core


class DynamicSupervisor:
    """A supervisor of children started at run time with ``start_child`` (strategy one_for_one).

    ``max_children``: start_child beyond this many running children raises MaxChildren, None (no limit).
    ``max_restarts`` / ``max_seconds``: restart intensity, as in SupervisorFlags, 3 in 5.0 s.
    Children are TEMPORARY unless their ChildSpec gives a restart type.
    """

    @classmethod
    async def start_link(cls, *, max_children: int | None = None, max_restarts: int = 3,
                         max_seconds: float = 5.0, name: str | None = None,
                         task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        flags = SupervisorFlags(Strategy.ONE_FOR_ONE, max_restarts, max_seconds)
        await _Core(flags, dynamic=True, max_children=max_children).run((), name, task_status)
