"""Application: start, SIGTERM/SIGINT -> prep_stop -> ordered shutdown, and the exit codes."""

from __future__ import annotations

import os
import signal
from functools import partial

import pytest
import trio
from trio.testing import MockClock

from switchd.otp import (
    Application,
    ChildSpec,
    SupervisorFlags,
    call,
    cast,
    run,
    run_async,
    stop,
    whereis,
)

from ._workers import Journal, Worker


def app_with(journal: Journal, **kwargs: object) -> Application:
    children = [ChildSpec(x, partial(Worker.start_link, journal, x, name=x)) for x in "abc"]
    return Application("demo", children, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_runs_prep_stop_then_stops_the_tree_in_reverse_order(signum: int) -> None:
    journal = Journal()

    async def prep_stop(app: Application) -> None:
        assert await call("a", "ping") == "pong"  # the tree is still up while draining
        journal.events.append(("prep_stop", app.name))

    async with trio.open_nursery() as nursery:
        codes: list[int] = []

        async def runner(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
            codes.append(await run_async(app_with(journal, prep_stop=prep_stop), task_status=task_status))

        root = await nursery.start(runner)
        assert root == whereis("demo")
        os.kill(os.getpid(), signum)
    assert codes == [0]
    assert journal.events[3:] == [("prep_stop", "demo"), ("stop", "c", "shutdown"), ("stop", "b", "shutdown"),
                                  ("stop", "a", "shutdown")]


async def test_prep_stop_is_bounded_by_its_timeout(autojump_clock: MockClock) -> None:
    journal = Journal()

    async def prep_stop(app: Application) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(run_async, app_with(journal, prep_stop=prep_stop, prep_stop_timeout=3.0))
        os.kill(os.getpid(), signal.SIGTERM)
    assert trio.current_time() == 3.0
    assert len(journal.stops()) == 3


async def test_the_exit_code_is_1_when_the_root_supervisor_gives_up() -> None:
    journal = Journal()
    app = app_with(journal, flags=SupervisorFlags(max_restarts=0))
    codes: list[int] = []
    async with trio.open_nursery() as nursery:

        async def runner(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
            codes.append(await run_async(app, task_status=task_status))

        await nursery.start(runner)
        cast("b", "crash")
    assert codes == [1]
    assert journal.stops() == [("b", "ValueError"), ("c", "shutdown"), ("a", "shutdown")]


async def test_the_exit_code_is_2_when_the_tree_fails_to_start() -> None:
    journal = Journal()
    children = [ChildSpec("a", partial(Worker.start_link, journal, "a", True, name="a"))]
    assert await run_async(Application("demo", children)) == 2


async def test_stopping_the_root_supervisor_ends_the_application_with_0() -> None:
    journal = Journal()
    codes: list[int] = []
    async with trio.open_nursery() as nursery:

        async def runner(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
            codes.append(await run_async(app_with(journal), task_status=task_status))

        await nursery.start(runner)
        await stop("demo")
    assert codes == [0]


def test_run_starts_a_trio_loop_and_returns_the_exit_code() -> None:
    journal = Journal()
    children = [ChildSpec("a", partial(Worker.start_link, journal, "a", True, name="a"))]
    assert run(Application("demo", children)) == 2
