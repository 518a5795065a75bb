"""DynamicSupervisor: start_child, max_children, terminate_child, temporary by default."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from switchd.otp import (
    ChildCounts,
    ChildSpec,
    DynamicSupervisor,
    MaxChildren,
    OTPError,
    Restart,
    ServerExited,
    call,
    count_children,
    start_child,
    terminate_child,
    which_children,
)

from ._workers import Journal, Worker


def spec(journal: Journal, ident: str, restart: Restart | None = None, fail: bool = False) -> ChildSpec:
    return ChildSpec("call", partial(Worker.start_link, journal, ident, fail), restart=restart)


async def test_start_child_returns_the_pid_of_a_started_child() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(partial(DynamicSupervisor.start_link, name="calls"))
        pid = await start_child("calls", spec(journal, "x"))
        assert await call(pid, "ping") == "pong"
        assert [c.pid for c in await which_children(sup)] == [pid]
        nursery.cancel_scope.cancel()


async def test_max_children_gives_a_clear_error_and_frees_up_when_a_child_exits() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(partial(DynamicSupervisor.start_link, max_children=2))
        first = await start_child(sup, spec(journal, "1"))
        await start_child(sup, spec(journal, "2"))
        with pytest.raises(MaxChildren, match="2 children"):
            await start_child(sup, spec(journal, "3"))
        await terminate_child(sup, first)
        await start_child(sup, spec(journal, "3"))
        assert journal.starts() == ["1", "2", "3"]
        nursery.cancel_scope.cancel()


async def test_children_are_temporary_by_default_and_a_crash_harms_no_sibling() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(partial(DynamicSupervisor.start_link, max_restarts=0))
        a = await start_child(sup, spec(journal, "a"))
        b = await start_child(sup, spec(journal, "b"))
        with pytest.raises(ServerExited):
            await call(a, "crash")
        await trio.testing.wait_all_tasks_blocked()
        assert [c.pid for c in await which_children(sup)] == [b]
        assert await call(b, "ping") == "pong"
        assert journal.starts() == ["a", "b"]
        nursery.cancel_scope.cancel()


async def test_an_explicit_permanent_child_is_restarted() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(DynamicSupervisor.start_link)
        pid = await start_child(sup, spec(journal, "p", Restart.PERMANENT))
        with pytest.raises(ServerExited):
            await call(pid, "crash")
        await trio.testing.wait_all_tasks_blocked()
        [info] = await which_children(sup)
        assert info.pid not in (None, pid) and info.restarts == 1
        nursery.cancel_scope.cancel()


async def test_terminate_child_runs_terminate_and_forgets_the_child() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(DynamicSupervisor.start_link)
        pid = await start_child(sup, spec(journal, "a"))
        await terminate_child(sup, pid)
        assert journal.stops() == [("a", "shutdown")]
        assert await count_children(sup) == ChildCounts(0, 0, 0, 0)
        with pytest.raises(OTPError, match="addressed by pid"):
            await terminate_child(sup, "call")
        nursery.cancel_scope.cancel()


async def test_a_child_whose_init_fails_raises_to_the_caller_and_the_supervisor_goes_on() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(DynamicSupervisor.start_link)
        with pytest.raises(RuntimeError, match="refuses"):
            await start_child(sup, spec(journal, "bad", fail=True))
        assert await count_children(sup) == ChildCounts(0, 0, 0, 0)
        await start_child(sup, spec(journal, "good"))
        nursery.cancel_scope.cancel()


async def test_shutting_the_supervisor_down_stops_children_newest_first() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(DynamicSupervisor.start_link)
        for name in "abc":
            await start_child(sup, spec(journal, name))
        nursery.cancel_scope.cancel()
    assert journal.stops() == [("c", "shutdown"), ("b", "shutdown"), ("a", "shutdown")]
