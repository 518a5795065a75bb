"""call/cast/reply plumbing: Caller identity, abandoned callers, infinite timeouts, node scoping."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from switchd.otp import (
    Caller,
    CallTimeout,
    GenServer,
    NoProcess,
    NoReply,
    Pid,
    Process,
    Reply,
    _call,
    call,
    cast,
    receive,
    self_pid,
    send,
    whereis,
)


class Holder(GenServer[list[Caller]]):
    """Keeps every caller; the cast "answer" replies to all of them with their pid."""

    async def init(self) -> list[Caller]:
        return []

    async def handle_call(self, request: Any, caller: Caller, state: list[Caller]) -> NoReply[list[Caller]]:
        return NoReply([*state, caller])

    async def handle_cast(self, request: Any, state: list[Caller]) -> NoReply[list[Caller]]:
        for caller in state:
            caller.reply(caller.pid)
        return NoReply([])


async def test_caller_pid_is_the_calling_process_or_none_for_a_plain_task() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(Holder.start_link)
        answers: dict[str, tuple[object, Pid | None]] = {}

        async def from_process() -> None:
            answers["process"] = (await call(server, "q"), self_pid())

        async def from_task() -> None:
            answers["task"] = (await call(server, "q"), None)

        await nursery.start(Process.start_link, from_process)
        nursery.start_soon(from_task)
        await trio.testing.wait_all_tasks_blocked()
        cast(server, "answer")
        await trio.testing.wait_all_tasks_blocked()
        got, me = answers["process"]
        assert got == me and isinstance(me, Pid)
        assert answers["task"] == (None, None)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("timeout", [math.inf, 60.0])
async def test_a_cancelled_caller_is_abandoned_and_its_late_reply_harms_nothing(timeout: float) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(Holder.start_link)
        with trio.CancelScope() as scope:
            nursery.start_soon(_cancel_soon, scope)
            await call(server, "q", timeout=timeout)
        assert scope.cancelled_caught
        assert server._proc.callers == set()  # no longer pending: the server's exit won't touch it
        # nor is its deadline: nothing is left for a clock to wait for
        assert trio.lowlevel.current_statistics().seconds_to_next_deadline == math.inf
        cast(server, "answer")  # replies to the abandoned caller: dropped
        await trio.testing.wait_all_tasks_blocked()
        # the server is still alive and takes the next call
        nursery.start_soon(partial(call, server, "again"))
        await trio.testing.wait_all_tasks_blocked()
        assert len(server._proc.callers or ()) == 1
        nursery.cancel_scope.cancel()


async def _cancel_soon(scope: trio.CancelScope) -> None:
    await trio.testing.wait_all_tasks_blocked()
    scope.cancel()


async def test_an_infinite_timeout_waits_as_long_as_it_takes(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(Holder.start_link)

        async def answer_much_later() -> None:
            await trio.sleep(3600.0)
            cast(server, "answer")

        nursery.start_soon(answer_much_later)
        assert await call(server, "q", timeout=math.inf) is None
        assert trio.current_time() == 3600.0
        nursery.cancel_scope.cancel()


def test_each_trio_run_has_its_own_node_pids_and_names() -> None:
    seen: list[tuple[str, object]] = []

    async def one_run() -> None:
        async with trio.open_nursery() as nursery:
            pid = await nursery.start(partial(Process.start_link, receive, name="same"))
            seen.append((str(pid), whereis("same") == pid))
            send(pid, "done")

    trio.run(one_run)
    trio.run(one_run)
    assert seen == [("<0.1.0>", True), ("<0.1.0>", True)]


async def test_cast_to_a_dead_pid_is_dropped() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, receive)
        send(pid, "bye")
    cast(pid, "late")  # no error, like Erlang
    with pytest.raises(NoProcess, match="not alive"):
        await call(pid, "q")


# -- call timeouts: one deadline heap per node, no CancelScope per call -----------------------------


async def test_each_caller_times_out_at_its_own_deadline_whatever_the_order(
    autojump_clock: MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(Holder.start_link)
        timed_out: list[tuple[float, float]] = []

        async def ask(timeout: float) -> None:
            with pytest.raises(CallTimeout, match=f"within {timeout:g}s"):
                await call(server, "q", timeout=timeout)
            timed_out.append((timeout, trio.current_time()))

        for timeout in (30.0, 10.0, 20.0, 5.0):  # each later call has an earlier deadline but the last
            nursery.start_soon(ask, timeout)
            await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(31.0)
        assert timed_out == [(5.0, 5.0), (10.0, 10.0), (20.0, 20.0), (30.0, 30.0)]
        assert server._proc.callers == set()  # the server forgets a caller that gave up
        cast(server, "answer")  # its late replies are dropped
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(partial(call, server, "again"))
        await trio.testing.wait_all_tasks_blocked()
        assert len(server._proc.callers or ()) == 1
        nursery.cancel_scope.cancel()


async def test_an_answered_call_leaves_no_deadline_behind(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Echo.start_link)
        assert [await call(pid, n, timeout=5.0) for n in range(3)] == [0, 1, 2]
        await trio.testing.wait_all_tasks_blocked()
        # as with a CancelScope per call: nothing left for a MockClock to jump to
        assert trio.lowlevel.current_statistics().seconds_to_next_deadline == math.inf
        with pytest.raises(CallTimeout):
            await call(pid, "never", timeout=7.0)
        assert trio.current_time() == 7.0
        nursery.cancel_scope.cancel()


async def test_answered_calls_do_not_pile_up_behind_one_that_waits(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        holder = await nursery.start(Holder.start_link)
        echo = await nursery.start(Echo.start_link)
        nursery.start_soon(partial(call, holder, "q", timeout=3600.0))  # first deadline, never answered
        await trio.testing.wait_all_tasks_blocked()
        for n in range(10_000):
            assert await call(echo, n, timeout=60.0) == n
        # answered callers are dropped from the node's deadline heap, not kept until their deadlines
        assert len(_call._deadlines()._heap) <= 2 * _call._COMPACT_AT + 2
        assert trio.current_time() == 0.0
        nursery.cancel_scope.cancel()


class Echo(GenServer[None]):
    async def init(self) -> None:
        return None

    async def handle_call(self, request: Any, caller: Caller, state: None) -> Reply[None] | NoReply[None]:
        if request == "never":
            return NoReply(state)
        return Reply(request, state)
