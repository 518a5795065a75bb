"""The process record: fairness of a flooded mailbox, idle memory, and timer bookkeeping."""

from __future__ import annotations

import gc
from typing import Any

import trio
from trio.testing import MockClock

from switchd.otp import (
    EventTimeout,
    GenServer,
    KeepState,
    NoReply,
    Process,
    StateMachine,
    cancel_timer,
    cast,
    receive,
    self_pid,
    send,
    send_after,
)


async def test_a_flooded_server_yields_so_other_tasks_keep_running() -> None:
    ticks = 0
    seen_at_end: list[int] = []

    class Sink(GenServer[int]):
        async def init(self) -> int:
            return 0

        async def handle_cast(self, request: Any, state: int) -> NoReply[int]:
            if state + 1 == 1000:
                seen_at_end.append(ticks)
            return NoReply(state + 1)

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Sink.start_link)
        nursery.start_soon(ticker)
        for i in range(1000):
            cast(pid, i)
        while not seen_at_end:
            await trio.lowlevel.checkpoint()
        nursery.cancel_scope.cancel()
    assert seen_at_end[0] >= 1000 // 32 - 2  # it yielded about every 32 messages


async def test_an_idle_process_keeps_no_mailbox_deque() -> None:
    async def body() -> None:
        await receive()
        await receive()

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, body)
        send(pid, 1)
        await trio.testing.wait_all_tasks_blocked()
        assert pid._proc.mailbox is None  # dropped when it parked empty
        send(pid, 2)


async def test_cancelled_timers_do_not_pile_up() -> None:
    class Chatty(StateMachine[str, int]):
        """Re-arms a 30 s event timeout on every event, as a call session does."""

        async def init(self) -> tuple[str, int]:
            return "on", 0

        async def handle_event(self, event: Any, content: Any, state: str, data: int) -> KeepState[int]:
            return KeepState(data + 1, [EventTimeout(30.0, "idle")])

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Chatty.start_link)
        for i in range(2000):
            cast(pid, i)
            if i % 100 == 0:
                await trio.testing.wait_all_tasks_blocked()
        await trio.testing.wait_all_tasks_blocked()
        timers = pid._proc.timers
        assert timers is not None and len(timers) <= 70  # not 2000
        assert sum(1 for _, _, t in timers if t.active) == 1
        nursery.cancel_scope.cancel()


async def test_send_after_timers_to_self_fire_and_cancel_in_any_order(autojump_clock: MockClock) -> None:
    got: list[tuple[object, float]] = []

    async def body() -> None:
        me = self_pid()
        refs = [send_after(me, n, float(n)) for n in range(10, 0, -1)]
        for ref in refs[::2]:
            cancel_timer(ref)
        for _ in range(5):
            got.append((await receive(), trio.current_time()))

    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, body)
    assert got == [(n, float(n)) for n in (1, 3, 5, 7, 9)]


async def test_a_timer_armed_by_another_task_wakes_a_parked_process_on_time(autojump_clock: MockClock) -> None:
    got: list[tuple[object, float]] = []

    async def body() -> None:
        got.append((await receive(), trio.current_time()))

    class Recorder(GenServer[None]):
        async def init(self) -> None:
            return None

        async def handle_info(self, msg: Any, state: None) -> NoReply[None]:
            got.append((msg, trio.current_time()))
            return NoReply(state)

    async with trio.open_nursery() as nursery:
        plain = await nursery.start(Process.start_link, body)
        server = await nursery.start(Recorder.start_link)
        await trio.testing.wait_all_tasks_blocked()  # both parked with no deadline
        send_after(plain, "to plain", 2.0)
        send_after(server, "to server", 3.0)
        await trio.sleep(5.0)
        nursery.cancel_scope.cancel()
    assert got == [("to plain", 2.0), ("to server", 3.0)]


async def test_an_ended_process_and_its_pid_leave_no_reference_cycle() -> None:
    """A call's process is freed by reference counting when it ends (the node's collector freezes long-lived
    objects: a cycle would stay until its sweep)."""

    async def brief() -> None:
        await trio.lowlevel.checkpoint()

    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                pid = await nursery.start(Process.start_link, brief)
                assert pid == pid._proc.pid  # the process makes an equal Pid when asked
        del pid
        gc.collect()
        left = [o for o in gc.garbage if type(o).__name__ in ("_Process", "Pid")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []
