"""Supervisor: ordered ready-gated start, strategies, restart types, intensity, shutdown, child ops."""

from __future__ import annotations

import logging
from functools import partial

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from switchd.otp import (
    BRUTAL_KILL,
    BrutalKill,
    ChildCounts,
    ChildSpec,
    ChildType,
    OTPError,
    Pid,
    Report,
    ReportKind,
    Restart,
    ServerExited,
    Strategy,
    Supervisor,
    SupervisorFlags,
    SupervisorGaveUp,
    call,
    cast,
    count_children,
    delete_child,
    processes,
    restart_child,
    set_report_handler,
    start_child,
    stop,
    terminate_child,
    whereis,
    which_children,
)

from ._workers import Journal, Worker


def spec(journal: Journal, ident: str, restart: Restart | None = None, *, fail: bool = False,
         terminate_takes: float = 0.0, shutdown: float | BrutalKill = 5.0) -> ChildSpec:
    start = partial(Worker.start_link, journal, ident, fail, terminate_takes, name=ident)
    return ChildSpec(ident, start, restart=restart, shutdown=shutdown)


async def crash(name: str) -> None:
    with pytest.raises(ServerExited):
        await call(name, "crash")
    await trio.testing.wait_all_tasks_blocked()  # let the supervisor handle the exit


async def test_children_start_in_order_each_ready_before_the_next() -> None:
    journal = Journal()
    seen: list[Pid | None] = []

    class Second(Worker):
        async def init(self, *args: object) -> tuple[Journal, str]:
            seen.append(whereis("a"))  # the first child is registered and ready already
            return await super().init(*args)  # type: ignore[arg-type]

    children = [spec(journal, "a"),
                ChildSpec("b", partial(Second.start_link, journal, "b", name="b"))]
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(partial(Supervisor.start_link, children, name="sup"))
        assert journal.starts() == ["a", "b"]
        assert seen == [whereis("a")] and seen[0] is not None
        assert [c.id for c in await which_children(sup)] == ["a", "b"]
        nursery.cancel_scope.cancel()


async def test_shutdown_is_in_reverse_start_order_and_runs_every_terminate() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [spec(journal, x) for x in "abc"])
        nursery.cancel_scope.cancel()
    assert journal.stops() == [("c", "shutdown"), ("b", "shutdown"), ("a", "shutdown")]


async def test_one_for_one_restarts_only_the_crashed_child() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [spec(journal, x) for x in "abc"])
        a, c = whereis("a"), whereis("c")
        old_b = whereis("b")
        await crash("b")
        assert whereis("a") == a and whereis("c") == c
        assert whereis("b") not in (None, old_b)
        assert await call("b", "ping") == "pong"
        assert journal.starts() == ["a", "b", "c", "b"]
        nursery.cancel_scope.cancel()


async def test_one_for_all_stops_the_others_in_reverse_order_and_restarts_all_in_order() -> None:
    journal = Journal()
    flags = SupervisorFlags(Strategy.ONE_FOR_ALL)
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [spec(journal, x) for x in "abc"], flags)
        journal.events.clear()
        await crash("b")
        assert journal.events == [
            ("stop", "b", "ValueError"), ("stop", "c", "shutdown"), ("stop", "a", "shutdown"),
            ("start", "a"), ("start", "b"), ("start", "c"),
        ]
        nursery.cancel_scope.cancel()


async def test_rest_for_one_restarts_the_crashed_child_and_those_started_after_it() -> None:
    journal = Journal()
    flags = SupervisorFlags(Strategy.REST_FOR_ONE)
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [spec(journal, x) for x in "abcd"], flags)
        a = whereis("a")
        journal.events.clear()
        await crash("b")
        assert journal.events == [
            ("stop", "b", "ValueError"), ("stop", "d", "shutdown"), ("stop", "c", "shutdown"),
            ("start", "b"), ("start", "c"), ("start", "d"),
        ]
        assert whereis("a") == a
        nursery.cancel_scope.cancel()


async def test_a_transient_child_is_restarted_after_a_crash_but_not_after_a_normal_exit() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(Supervisor.start_link, [spec(journal, "t", Restart.TRANSIENT)])
        await crash("t")
        assert whereis("t") is not None
        assert await call("t", ("exit", "normal")) == "ok"
        await trio.testing.wait_all_tasks_blocked()
        assert whereis("t") is None
        assert journal.starts() == ["t", "t"]
        assert (await which_children(sup))[0].pid is None  # the spec stays, not running
        nursery.cancel_scope.cancel()


async def test_a_transient_child_stopping_with_an_abnormal_reason_is_restarted() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [spec(journal, "t", Restart.TRANSIENT)])
        assert await call("t", ("exit", "bad_state")) == "ok"
        await trio.testing.wait_all_tasks_blocked()
        assert journal.starts() == ["t", "t"]
        nursery.cancel_scope.cancel()


async def test_a_temporary_child_crash_neither_restarts_it_nor_kills_the_supervisor() -> None:
    journal = Journal()
    flags = SupervisorFlags(max_restarts=0)  # would give up on any counted restart
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(Supervisor.start_link,
                                  [spec(journal, "p"), spec(journal, "tmp", Restart.TEMPORARY)], flags)
        await crash("tmp")
        assert whereis("tmp") is None
        assert [c.id for c in await which_children(sup)] == ["p"]  # a temporary child is forgotten
        assert await call("p", "ping") == "pong"
        nursery.cancel_scope.cancel()


async def test_restart_intensity_counts_restarts_of_all_children_together(autojump_clock: MockClock) -> None:
    journal = Journal()
    flags = SupervisorFlags(max_restarts=3, max_seconds=5.0)
    with pytest.RaisesGroup(SupervisorGaveUp):
        async with trio.open_nursery() as nursery:
            await nursery.start(Supervisor.start_link, [spec(journal, x) for x in "abc"], flags)
            for name in ["a", "b", "a"]:  # three restarts, no child more than twice: allowed
                await crash(name)
                await trio.sleep(1.0)
            journal.events.clear()
            cast("c", "crash")  # the fourth within 5 s: the supervisor gives up
            await trio.sleep_forever()
    assert trio.current_time() == 3.0
    # it shut the others down in reverse order and did not restart c
    assert journal.events == [("stop", "c", "ValueError"), ("stop", "b", "shutdown"), ("stop", "a", "shutdown")]


async def test_restarts_older_than_max_seconds_do_not_count(autojump_clock: MockClock) -> None:
    journal = Journal()
    flags = SupervisorFlags(max_restarts=2, max_seconds=5.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [spec(journal, "a")], flags)
        for _ in range(6):  # one crash every 3 s: never more than 2 in any 5 s window
            await crash("a")
            await trio.sleep(3.0)
        assert journal.starts() == ["a"] * 7
        nursery.cancel_scope.cancel()


async def test_a_supervisor_that_gave_up_is_restarted_by_its_own_supervisor() -> None:
    journal = Journal()
    inner = ChildSpec("inner", partial(Supervisor.start_link, [spec(journal, "w")],
                                       SupervisorFlags(max_restarts=0), name="inner"),
                      type=ChildType.SUPERVISOR)
    async with trio.open_nursery() as nursery:
        outer = await nursery.start(Supervisor.start_link, [inner])
        first = whereis("inner")
        await crash("w")
        assert whereis("inner") not in (None, first)
        assert journal.starts() == ["w", "w"]
        assert (await which_children(outer))[0].restarts == 1
        assert await count_children(outer) == ChildCounts(specs=1, active=1, supervisors=1, workers=0)
        nursery.cancel_scope.cancel()


async def test_a_child_is_given_its_shutdown_timeout_then_cut_off(autojump_clock: MockClock) -> None:
    journal = Journal()
    children = [spec(journal, "slow", shutdown=2.0, terminate_takes=10.0),
                spec(journal, "after", terminate_takes=1.0)]
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, children)
        nursery.cancel_scope.cancel()
    # "after" stops first (1 s), then "slow" is cut off at its 2 s timeout: its terminate never ends
    assert journal.stops() == [("after", "shutdown")]
    assert trio.current_time() == 3.0


async def test_brutal_kill_skips_terminate() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [spec(journal, "k", shutdown=BRUTAL_KILL), spec(journal, "g")])
        nursery.cancel_scope.cancel()
    assert journal.stops() == [("g", "shutdown")]


async def test_a_failing_child_start_stops_the_started_ones_and_fails_the_supervisor_start() -> None:
    journal = Journal()
    reports: list[Report] = []
    set_report_handler(reports.append)
    children = [spec(journal, "a"), spec(journal, "b", fail=True), spec(journal, "c")]
    async with trio.open_nursery() as nursery:
        with pytest.raises(RuntimeError, match="b refuses"):
            await nursery.start(partial(Supervisor.start_link, children, name="sup"))
    assert journal.events == [("start", "a"), ("stop", "a", "shutdown")]
    assert whereis("sup") is None
    assert [(r.kind, r.child) for r in reports] == [(ReportKind.START_FAILED, "b")]


async def test_terminate_restart_and_delete_child() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(Supervisor.start_link, [spec(journal, "a"), spec(journal, "b")])
        await terminate_child(sup, "a")
        assert whereis("a") is None and journal.stops() == [("a", "shutdown")]
        assert await count_children(sup) == ChildCounts(specs=2, active=1, supervisors=0, workers=1)
        with pytest.raises(OTPError, match="running"):
            await delete_child(sup, "b")
        pid = await restart_child(sup, "a")
        assert whereis("a") == pid
        with pytest.raises(OTPError, match="running"):
            await restart_child(sup, "a")
        await terminate_child(sup, "a")
        await delete_child(sup, "a")
        assert [c.id for c in await which_children(sup)] == ["b"]
        with pytest.raises(OTPError, match="no child 'zz'"):
            await terminate_child(sup, "zz")
        nursery.cancel_scope.cancel()


async def test_start_child_adds_a_child_to_a_running_supervisor() -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(Supervisor.start_link, [spec(journal, "a")])
        pid = await start_child(sup, spec(journal, "late"))
        assert whereis("late") == pid
        with pytest.raises(OTPError, match="duplicate child id 'late'"):
            await start_child(sup, spec(journal, "late"))
        with pytest.raises(RuntimeError, match="refuses"):
            await start_child(sup, spec(journal, "bad", fail=True))
        assert [c.id for c in await which_children(sup)] == ["a", "late"]
        nursery.cancel_scope.cancel()


async def test_crash_restart_and_gave_up_reports_reach_the_handler_and_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="switchd.otp")
    journal = Journal()
    reports: list[Report] = []
    set_report_handler(reports.append)
    with pytest.RaisesGroup(SupervisorGaveUp):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(Supervisor.start_link, [spec(journal, "a")],
                                        SupervisorFlags(max_restarts=1), name="top"))
            await crash("a")
            cast("a", "crash")
            await trio.sleep_forever()
    assert [(r.kind, r.supervisor, r.child) for r in reports] == [
        (ReportKind.CRASH, "top", "a"), (ReportKind.RESTART, "top", "a"),
        (ReportKind.CRASH, "top", "a"), (ReportKind.GAVE_UP, "top", "a"),
    ]
    assert isinstance(reports[0].reason, ValueError)
    records = [r for r in caplog.records if r.name == "switchd.otp"]
    assert [r.__dict__["report"] for r in records] == ["crash", "restart", "crash", "gave_up"]
    assert all(r.__dict__["child"] == "a" for r in records)


async def test_cancelling_a_supervisor_while_a_child_starts_stops_the_started_ones(
        autojump_clock: MockClock) -> None:
    journal = Journal()

    class SlowStart(Worker):
        async def init(self, *args: object) -> tuple[Journal, str]:
            await trio.sleep(10.0)
            raise AssertionError("never gets here")

    children = [spec(journal, "a"), ChildSpec("slow", partial(SlowStart.start_link, journal, "slow"))]
    with trio.move_on_after(1.0):
        async with trio.open_nursery() as nursery:
            await nursery.start(Supervisor.start_link, children)
    assert trio.current_time() == 1.0
    assert journal.events == [("start", "a"), ("stop", "a", "shutdown")]


async def test_a_child_that_becomes_ready_after_its_supervisor_was_cancelled_is_still_stopped(
        autojump_clock: MockClock) -> None:
    journal = Journal()
    outer = trio.CancelScope()

    class LateReady(Worker):
        async def init(self, *args: object) -> tuple[Journal, str]:
            outer.cancel()  # the supervisor is cancelled while this child starts...
            with trio.CancelScope(shield=True):
                await trio.testing.wait_all_tasks_blocked()  # ...and shuts down before it is ready
            return journal, "late"  # ready now, unshielded: the cancellation reaches it

    async def unstick() -> None:  # a regression leaves the child shielded forever: stop it so
        await trio.sleep(5.0)     # the test fails on the time below instead of hanging the suite
        for info in processes():
            if info.kind == "gen_server":
                await stop(info.pid)

    async with trio.open_nursery() as guard:
        guard.start_soon(unstick)
        with outer:
            async with trio.open_nursery() as nursery:
                await nursery.start(Supervisor.start_link, [ChildSpec("late", LateReady.start_link)])
        guard.cancel_scope.cancel()
    assert trio.current_time() == 0.0
    assert journal.stops() == [("late", "shutdown")]


def _gives_up_at(crash_times: list[int], max_restarts: int, max_seconds: int) -> int | None:
    """The index of the crash at which a supervisor must give up (None: it never does)."""
    window: list[int] = []
    for index, now in enumerate(crash_times):
        window = [t for t in window if t >= now - max_seconds] + [now]
        if len(window) > max_restarts:
            return index
    return None


@given(crashes=st.lists(st.tuples(st.integers(0, 4), st.sampled_from("ab")), min_size=1, max_size=10),
       max_restarts=st.integers(0, 4), max_seconds=st.integers(1, 8))
@settings(max_examples=40, deadline=None)
def test_the_supervisor_gives_up_exactly_when_restarts_of_any_children_exceed_the_intensity(
        crashes: list[tuple[int, str]], max_restarts: int, max_seconds: int) -> None:
    crash_times = [sum(gap for gap, _ in crashes[: i + 1]) for i in range(len(crashes))]
    expected = _gives_up_at(crash_times, max_restarts, max_seconds)
    journal = Journal()
    gave_up_at: list[float] = []

    async def scenario() -> None:
        flags = SupervisorFlags(max_restarts=max_restarts, max_seconds=float(max_seconds))
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(Supervisor.start_link, [spec(journal, "a"), spec(journal, "b")], flags)
                for gap, target in crashes:
                    await trio.sleep(gap)
                    cast(target, "crash")
                    await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()
        except* SupervisorGaveUp:
            gave_up_at.append(trio.current_time())

    trio.run(scenario, clock=MockClock(autojump_threshold=0))
    restarted = len(crashes) if expected is None else expected
    assert gave_up_at == ([] if expected is None else [crash_times[expected]])
    assert len(journal.starts()) == 2 + restarted


async def test_one_for_all_leaves_stopped_children_stopped_and_forgets_temporary_ones() -> None:
    journal = Journal()
    children = [spec(journal, "a"), spec(journal, "t", Restart.TEMPORARY), spec(journal, "off"), spec(journal, "c")]
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(Supervisor.start_link, children, SupervisorFlags(Strategy.ONE_FOR_ALL))
        await terminate_child(sup, "off")
        journal.events.clear()
        await crash("a")
        assert journal.events == [
            ("stop", "a", "ValueError"), ("stop", "c", "shutdown"), ("stop", "t", "shutdown"),
            ("start", "a"), ("start", "c"),
        ]
        assert [(c.id, c.pid is not None) for c in await which_children(sup)] == [
            ("a", True), ("off", False), ("c", True)]
        nursery.cancel_scope.cancel()


async def test_a_brutal_kill_child_still_runs_terminate_when_it_crashes(autojump_clock: MockClock) -> None:
    journal = Journal()
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link,
                            [spec(journal, "k", shutdown=BRUTAL_KILL, terminate_takes=0.5)])
        await crash("k")
        assert journal.stops() == [("k", "ValueError")]
        nursery.cancel_scope.cancel()
    assert journal.stops() == [("k", "ValueError")]  # and none at the brutal shutdown
