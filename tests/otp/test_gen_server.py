"""GenServer: ready-gated start, call/cast/info, deferred replies, stop, terminate, timeouts."""

from __future__ import annotations

import math
from functools import partial
from typing import Any, ClassVar

import pytest
import trio
from trio.testing import MockClock

from switchd.otp import (
    AlreadyRegistered,
    Caller,
    CallTimeout,
    GenServer,
    NoProcess,
    NoReply,
    OTPError,
    Pid,
    Reply,
    ServerExited,
    Stop,
    call,
    cast,
    process_info,
    reply,
    self_pid,
    send,
    send_after,
    stop,
    whereis,
)


class Counter(GenServer[int]):
    """Counts casts; answers calls with the count; records how it terminated."""

    terminated: ClassVar[list[tuple[object, int]]] = []

    async def init(self, start: int = 0) -> int:
        return start

    async def handle_call(self, request: Any, caller: Caller, state: int) -> Reply[int] | NoReply[int] | Stop[int]:
        match request:
            case "get":
                return Reply(state, state)
            case ("sleep", seconds):
                await trio.sleep(seconds)
                return Reply("slept", state)
            case "crash":
                raise ValueError("asked to crash")
            case ("stop", reason):
                return Stop(reason, state, reply="bye")
            case "cast_self":
                cast(self_pid(), "inc")
                send(self_pid(), "info")
                return Reply("ok", state)
        raise AssertionError(request)

    async def handle_cast(self, request: Any, state: int) -> NoReply[int] | Stop[int]:
        if request == "inc":
            return NoReply(state + 1)
        return Stop("normal", state)

    async def handle_info(self, msg: Any, state: int) -> NoReply[int] | Stop[int]:
        return NoReply(state + 100)

    async def terminate(self, reason: object, state: int) -> None:
        Counter.terminated.append((reason, state))


@pytest.fixture(autouse=True)
def _reset() -> None:
    Counter.terminated = []


class FailingInit(GenServer[None]):
    async def init(self) -> None:
        raise RuntimeError("no config")


async def test_start_returns_after_init_with_the_pid_and_registers_the_name() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(Counter.start_link, 5, name="counter"))
        assert isinstance(pid, Pid)
        assert str(pid).startswith("<0.") and str(pid).endswith(".0>")
        assert whereis("counter") == pid
        assert await call("counter", "get") == 5
        nursery.cancel_scope.cancel()


async def test_an_exception_in_init_fails_the_start_and_frees_the_name() -> None:
    async with trio.open_nursery() as nursery:
        with pytest.raises(RuntimeError, match="no config"):
            await nursery.start(partial(FailingInit.start_link, name="f"))
        assert whereis("f") is None


async def test_a_second_server_under_a_live_name_fails_to_start() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(Counter.start_link, name="c"))
        with pytest.raises(AlreadyRegistered, match="'c'"):
            await nursery.start(partial(Counter.start_link, name="c"))
        nursery.cancel_scope.cancel()


async def test_cast_and_info_are_handled_in_order_and_call_sees_them() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Counter.start_link)
        cast(pid, "inc")
        cast(pid, "inc")
        send(pid, "anything")
        assert await call(pid, "get") == 102
        nursery.cancel_scope.cancel()


async def test_cast_never_blocks_even_when_the_server_is_busy(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Counter.start_link)
        nursery.start_soon(partial(call, pid, ("sleep", 10.0), timeout=60.0))
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(1000):
            cast(pid, "inc")  # plain def: returns at once while the server sleeps
        assert trio.current_time() == 0.0
        assert await call(pid, "get", timeout=60.0) == 1000
        assert trio.current_time() == 10.0
        nursery.cancel_scope.cancel()


async def test_a_server_can_cast_and_send_to_itself_without_deadlock() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Counter.start_link)
        assert await call(pid, "cast_self") == "ok"
        assert await call(pid, "get") == 101
        nursery.cancel_scope.cancel()


async def test_call_to_a_server_that_never_replies_times_out(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Counter.start_link)
        with pytest.raises(CallTimeout):
            await call(pid, ("sleep", 100.0), timeout=5.0)
        assert trio.current_time() == 5.0
        nursery.cancel_scope.cancel()


async def test_a_late_reply_is_dropped_and_the_server_keeps_serving(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Counter.start_link, 7)
        with pytest.raises(CallTimeout):
            await call(pid, ("sleep", 3.0), timeout=1.0)
        # the server replies at t=3 to a caller that left at t=1: harmless
        assert await call(pid, "get") == 7
        assert trio.current_time() == 3.0
        assert Counter.terminated == []
        nursery.cancel_scope.cancel()


async def test_a_crash_in_handle_call_gives_the_caller_server_exited_with_the_exception() -> None:
    with pytest.RaisesGroup(ValueError):
        async with trio.open_nursery() as nursery:
            pid = await nursery.start(Counter.start_link, 3)
            with pytest.raises(ServerExited) as info:
                await call(pid, "crash")
            assert isinstance(info.value.reason, ValueError)
            reason, state = Counter.terminated[0]
            assert isinstance(reason, ValueError) and state == 3


class Deferring(GenServer[list[Caller]]):
    """Holds callers until a 'release' cast, then answers them all: a deferred reply."""

    async def init(self) -> list[Caller]:
        return []

    async def handle_call(self, request: Any, caller: Caller, state: list[Caller]) -> NoReply[list[Caller]]:
        return NoReply([*state, caller])

    async def handle_cast(self, request: Any, state: list[Caller]) -> NoReply[list[Caller]]:
        for caller in state:
            reply(caller, ("released", caller.request))
        return NoReply([])

    async def handle_info(self, msg: Any, state: list[Caller]) -> NoReply[list[Caller]]:
        for caller in state:
            caller.reply("x")
        return NoReply(state)


async def test_handle_call_can_defer_its_reply_and_answer_later() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Deferring.start_link)
        results: list[object] = []

        async def ask(n: int) -> None:
            results.append(await call(pid, n))

        nursery.start_soon(ask, 1)
        nursery.start_soon(ask, 2)
        await trio.testing.wait_all_tasks_blocked()
        assert results == []
        cast(pid, "release")
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(results, key=repr) == [("released", 1), ("released", 2)]
        nursery.cancel_scope.cancel()


async def test_a_second_reply_to_the_same_caller_is_ignored() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Deferring.start_link)
        async with trio.open_nursery() as inner:
            got: list[object] = []

            async def ask() -> None:
                got.append(await call(pid, "q"))

            inner.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()
            cast(pid, "release")
        send(pid, "reply again")  # replies "x" to an already answered caller: dropped
        assert got == [("released", "q")]
        nursery.cancel_scope.cancel()


async def test_stop_runs_terminate_and_returns_after_the_exit() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(Counter.start_link, 4, name="s"))
        await stop("s")
        assert Counter.terminated == [("normal", 4)]
        assert whereis("s") is None
        with pytest.raises(NoProcess):
            await call(pid, "get")


async def test_stop_from_handle_call_replies_first_then_terminates() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Counter.start_link, 1)
        assert await call(pid, ("stop", "normal")) == "bye"
        await trio.testing.wait_all_tasks_blocked()
        assert Counter.terminated == [("normal", 1)]


async def test_terminate_runs_when_the_parent_cancels_the_server() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(Counter.start_link, 9)
        nursery.cancel_scope.cancel()
    assert Counter.terminated == [("shutdown", 9)]


class SlowTerminate(GenServer[None]):
    finished: ClassVar[list[float]] = []

    async def init(self) -> None:
        return None

    async def terminate(self, reason: object, state: None) -> None:
        await trio.sleep(1.0)  # runs although the server is being cancelled: shielded
        SlowTerminate.finished.append(trio.current_time())


async def test_terminate_is_shielded_from_the_cancellation_that_stops_the_server(
        autojump_clock: MockClock) -> None:
    SlowTerminate.finished = []
    async with trio.open_nursery() as nursery:
        await nursery.start(SlowTerminate.start_link)
        nursery.cancel_scope.cancel()
    assert SlowTerminate.finished == [1.0]


async def test_call_and_cast_by_unknown_name_raise_no_process() -> None:
    with pytest.raises(NoProcess, match="'nobody'"):
        await call("nobody", "x")
    with pytest.raises(NoProcess):
        cast("nobody", "x")


async def test_a_call_to_itself_fails_instead_of_deadlocking() -> None:
    class Selfish(GenServer[None]):
        async def init(self) -> None:
            return None

        async def handle_call(self, request: Any, caller: Caller, state: None) -> Reply[None]:
            try:
                await call(self_pid(), "again", timeout=math.inf)
            except OTPError as exc:
                info = process_info(self_pid())
                assert info is not None and info.mailbox_depth == 0  # nothing was posted to itself
                return Reply(str(exc), state)
            return Reply("no error", state)

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Selfish.start_link)
        assert "deadlock" in await call(pid, "go")
        nursery.cancel_scope.cancel()


async def test_stop_with_an_abnormal_reason_reaches_the_callers_as_that_reason() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Counter.start_link)
        await stop(pid, "maintenance")
        assert Counter.terminated == [("maintenance", 0)]


async def test_a_caller_waiting_on_a_server_that_dies_gets_server_exited_at_once(
        autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Deferring.start_link)

        async def stop_later() -> None:
            await trio.sleep(1.0)
            await stop(pid, "because")

        nursery.start_soon(stop_later)
        with pytest.raises(ServerExited) as info:
            await call(pid, "never answered", timeout=60.0)
        assert info.value.reason == "because"
        assert trio.current_time() == 1.0  # at the exit, not at the timeout


async def test_callers_queued_behind_a_crash_get_server_exited_not_a_timeout(
        autojump_clock: MockClock) -> None:
    outcomes: list[object] = []

    async def ask(pid: Pid, request: object) -> None:
        try:
            await call(pid, request, timeout=60.0)
        except ServerExited as exc:
            outcomes.append((request, type(exc.reason).__name__, trio.current_time()))

    with pytest.RaisesGroup(ValueError):
        async with trio.open_nursery() as nursery:
            pid = await nursery.start(Counter.start_link)
            for request in [("sleep", 1.0), "crash", "get"]:  # queued in this order while it sleeps
                nursery.start_soon(ask, pid, request)
                await trio.testing.wait_all_tasks_blocked()
    assert sorted(outcomes, key=repr) == [("crash", "ValueError", 1.0), ("get", "ValueError", 1.0)]


async def test_a_name_given_to_nursery_start_is_flagged_as_the_task_name_trap(
        caplog: pytest.LogCaptureFixture) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(Counter.start_link, name="counter")  # trio takes this name for the task
        assert whereis("counter") is None
        assert "use functools.partial(Cls.start_link, ..., name='counter')" in caplog.text
        nursery.cancel_scope.cancel()


class Ticker(GenServer[list[float]]):
    """Arms a timer to itself in init and on every tick, three times."""

    async def init(self) -> list[float]:
        send_after(self_pid(), "tick", 2.0)
        return []

    async def handle_call(self, request: Any, caller: Caller, state: list[float]) -> Reply[list[float]]:
        return Reply(state, state)

    async def handle_info(self, msg: Any, state: list[float]) -> NoReply[list[float]]:
        state = [*state, trio.current_time()]
        if len(state) < 3:
            send_after(self_pid(), "tick", 2.0)
        return NoReply(state)


async def test_send_after_to_itself_reaches_handle_info_on_time(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Ticker.start_link)
        await trio.sleep(10.0)
        assert await call(pid, "ticks") == [2.0, 4.0, 6.0]
        nursery.cancel_scope.cancel()
