"""Plain processes: pids, mailboxes, send/receive, selective receive, monitors, timers."""

from __future__ import annotations

from functools import partial

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from switchd.otp import (
    Down,
    NoProcess,
    OTPError,
    Pid,
    Process,
    ReceiveTimeout,
    cancel_timer,
    demonitor,
    is_process_alive,
    monitor,
    receive,
    self_pid,
    send,
    send_after,
    set_inline_handler,
)


async def echo() -> None:
    """Answers ("echo", sender, x) with ("echoed", x) until told "quit"."""
    while True:
        msg = await receive()
        if msg == "quit":
            return
        if msg == "boom":
            raise ValueError("boom")
        assert isinstance(msg, tuple)
        _, sender, value = msg
        send(sender, ("echoed", value))


async def test_a_process_has_a_pid_printed_erlang_style_and_a_fifo_mailbox() -> None:
    async with trio.open_nursery() as nursery:
        me = await nursery.start(Process.start_link, _await_quit)
        other = await nursery.start(Process.start_link, echo)
        assert isinstance(other, Pid) and str(other) == f"<0.{other.number}.0>"
        assert other != me and len({me, other, other}) == 2
        for i in range(3):
            send(other, ("echo", me, i))
        await trio.testing.wait_all_tasks_blocked()
        assert me._proc.mailbox is not None and list(me._proc.mailbox) == [("echoed", i) for i in range(3)]
        send(me, "quit")
        send(other, "quit")


async def _await_quit() -> None:
    await receive(match=lambda m: m == "quit")


async def test_receive_with_match_skips_other_messages_and_keeps_them_in_order() -> None:
    got: list[object] = []

    async def picky() -> None:
        got.append(await receive(match=lambda m: isinstance(m, int)))
        got.append(await receive())
        got.append(await receive())

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, picky)
        send(pid, "a")
        send(pid, "b")
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        send(pid, 42)
    assert got == [42, "a", "b"]


async def test_receive_times_out_at_the_exact_time(autojump_clock: MockClock) -> None:
    async def waiter() -> None:
        with pytest.raises(ReceiveTimeout):
            await receive(timeout=2.5)
        assert trio.current_time() == 2.5

    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, waiter)


async def test_receive_and_self_pid_outside_a_process_raise_no_process() -> None:
    with pytest.raises(NoProcess):
        self_pid()
    with pytest.raises(NoProcess):
        await receive()


async def test_send_to_an_unregistered_name_raises_and_to_a_dead_pid_is_dropped() -> None:
    with pytest.raises(NoProcess, match="'ghost'"):
        send("ghost", 1)
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, echo)
        send(pid, "quit")
    send(pid, "late")  # dropped, as in Erlang
    assert pid._proc.mailbox is None


async def test_monitor_delivers_down_with_normal_or_the_exception() -> None:
    downs: list[Down] = []

    async def watcher(targets: list[Pid]) -> None:
        for t in targets:
            monitor(t)
        for _ in targets:
            msg = await receive()
            assert isinstance(msg, Down)
            downs.append(msg)

    async with trio.open_nursery() as outer:
        with pytest.RaisesGroup(ValueError):
            async with trio.open_nursery() as nursery:
                quitter = await nursery.start(Process.start_link, echo)
                crasher = await nursery.start(Process.start_link, echo)
                await outer.start(Process.start_link, watcher, [quitter, crasher])
                send(quitter, "quit")
                await trio.testing.wait_all_tasks_blocked()
                send(crasher, "boom")
    assert (downs[0].pid, downs[0].reason) == (quitter, "normal")
    assert downs[1].pid == crasher and isinstance(downs[1].reason, ValueError)


async def test_monitor_of_a_process_cancelled_by_its_parent_reports_shutdown() -> None:
    downs: list[object] = []

    async def watcher(target: Pid) -> None:
        monitor(target)
        downs.append(await receive())

    async with trio.open_nursery() as outer, trio.open_nursery() as inner:
        target = await inner.start(Process.start_link, echo)
        await outer.start(Process.start_link, watcher, target)
        inner.cancel_scope.cancel()
    assert [(d.pid, d.reason) for d in downs if isinstance(d, Down)] == [(target, "shutdown")]


async def test_monitor_of_a_dead_pid_gives_noproc_at_once_and_demonitor_stops_it(
        autojump_clock: MockClock) -> None:
    async def body(dead: Pid, alive: Pid) -> None:
        ref = monitor(dead)
        msg = await receive(timeout=0)
        assert isinstance(msg, Down) and msg.ref is ref and msg.reason == "noproc"
        ref2 = monitor(alive)
        demonitor(ref2)
        send(alive, "quit")
        with pytest.raises(ReceiveTimeout):
            await receive(timeout=1.0)

    async with trio.open_nursery() as nursery:
        dead = await nursery.start(Process.start_link, echo)
        send(dead, "quit")
        await trio.testing.wait_all_tasks_blocked()
        alive = await nursery.start(Process.start_link, echo)
        await nursery.start(Process.start_link, body, dead, alive)


async def test_demonitor_with_flush_removes_a_down_already_delivered() -> None:
    async def body(target: Pid) -> None:
        ref = monitor(target)
        send(target, "quit")
        await trio.testing.wait_all_tasks_blocked()
        demonitor(ref, flush=True)
        with pytest.raises(ReceiveTimeout):
            await receive(timeout=0)

    async with trio.open_nursery() as nursery:
        target = await nursery.start(Process.start_link, echo)
        await nursery.start(Process.start_link, body, target)


async def test_send_after_delivers_at_the_exact_time_and_cancel_timer_stops_it(
        autojump_clock: MockClock) -> None:
    arrivals: list[tuple[object, float]] = []

    async def body() -> None:
        me = self_pid()
        send_after(me, "late", 3.0)
        send_after(me, "early", 1.0)
        cancelled = send_after(me, "never", 2.0)
        assert cancel_timer(cancelled) is True
        assert cancel_timer(cancelled) is False
        for _ in range(2):
            arrivals.append((await receive(), trio.current_time()))
        with pytest.raises(ReceiveTimeout):
            await receive(timeout=10.0)

    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, body)
    assert arrivals == [("early", 1.0), ("late", 3.0)]


async def test_a_timer_that_fired_cannot_be_cancelled(autojump_clock: MockClock) -> None:
    async def body() -> None:
        ref = send_after(self_pid(), "tick", 1.0)
        assert await receive() == "tick"
        assert cancel_timer(ref) is False

    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, body)


async def test_a_named_process_is_found_by_name_and_released_on_exit() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(Process.start_link, echo, name="echo"))
        send("echo", ("echo", pid, 0))  # it echoes to itself; then quit
        send("echo", "quit")
    with pytest.raises(NoProcess):
        send("echo", "x")


async def test_a_process_cannot_start_a_second_process_in_its_own_task() -> None:
    async def body() -> None:
        with pytest.raises(OTPError, match="already runs process"):
            await Process.start_link(receive)

    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, body)


@given(st.lists(st.integers(0, 9), max_size=30), st.sets(st.integers(0, 9)))
@settings(max_examples=50, deadline=None)
def test_selective_receive_takes_matches_in_order_and_leaves_the_rest_in_order(
        messages: list[int], wanted: set[int]) -> None:
    taken: list[int] = []
    rest: list[int] = []

    async def body() -> None:
        for m in messages:
            send(self_pid(), m)
        for _ in [m for m in messages if m in wanted]:
            msg = await receive(match=lambda m: m in wanted)
            assert isinstance(msg, int)
            taken.append(msg)
        for _ in [m for m in messages if m not in wanted]:
            msg = await receive(timeout=0)
            assert isinstance(msg, int)
            rest.append(msg)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(Process.start_link, body)

    trio.run(main)
    assert taken == [m for m in messages if m in wanted]
    assert rest == [m for m in messages if m not in wanted]


async def test_is_process_alive_follows_the_exit() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, receive)
        assert is_process_alive(pid)
        send(pid, "bye")
    assert not is_process_alive(pid)


async def test_a_process_whose_own_nursery_is_cancelled_exits_shutdown() -> None:
    downs: list[object] = []

    async def body() -> None:
        async with trio.open_nursery() as inner:
            inner.start_soon(trio.sleep_forever)
            inner.start_soon(trio.sleep_forever)

    async def watcher(target: Pid) -> None:
        monitor(target)
        msg = await receive()
        assert isinstance(msg, Down)
        downs.append(msg.reason)

    async with trio.open_nursery() as outer, trio.open_nursery() as nursery:
        target = await nursery.start(Process.start_link, body)
        await outer.start(Process.start_link, watcher, target)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert downs == ["shutdown"]


# --- inline handlers ---------------------------------------------------------------------------


async def inline_taker(taken: list[object], *, fail_on: object = None) -> None:
    """Takes ints inline (into `taken`), declines the rest; then receives until "quit", echoing to taken."""

    def take(msg: object) -> bool:
        if msg == fail_on:
            raise RuntimeError("handler bug")
        if isinstance(msg, int):
            taken.append(("inline", msg))
            return True
        return False

    set_inline_handler(take)
    while True:
        msg = await receive()
        taken.append(("mailbox", msg))
        if msg == "quit":
            return


async def test_an_inline_handler_takes_messages_in_the_senders_task_and_declines_to_the_mailbox() -> None:
    taken: list[object] = []
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, inline_taker, taken)
        await trio.testing.wait_all_tasks_blocked()
        send(pid, 1)
        assert taken == [("inline", 1)]  # handled before send returned: no task switch
        assert pid._proc.mailbox_depth() == 0
        send(pid, "x")  # declined: delivered as usual
        send(pid, 2)  # the mailbox holds "x": 2 must not overtake it, so it queues too
        assert pid._proc.mailbox_depth() == 2
        send(pid, "quit")
    assert taken == [("inline", 1), ("mailbox", "x"), ("mailbox", 2), ("mailbox", "quit")]


async def test_an_inline_handler_that_raises_is_logged_and_the_message_goes_to_the_mailbox(
        caplog: pytest.LogCaptureFixture) -> None:
    taken: list[object] = []
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, partial(inline_taker, taken, fail_on=7))
        await trio.testing.wait_all_tasks_blocked()
        send(pid, 7)  # the sender does not see the handler's bug
        send(pid, "quit")
    assert taken == [("mailbox", 7), ("mailbox", "quit")]
    assert "inline handler failed" in caplog.text


async def test_an_inline_handler_is_gone_with_its_process() -> None:
    taken: list[object] = []
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, inline_taker, taken)
        send(pid, "quit")
    send(pid, 1)  # to a dead pid: dropped, as any message
    assert taken == [("mailbox", "quit")]
    assert pid._proc.inline is None


# --- wake-ups: processes parked until a timer share one sleeper per node ---------------------------


async def wait_for_timer(delay: float, got: list[tuple[str, float]], label: str) -> None:
    send_after(self_pid(), label, delay)
    msg = await receive()
    got.append((str(msg), trio.current_time()))


async def test_processes_parked_on_timers_wake_each_at_its_deadline_the_earliest_first(
        autojump_clock: MockClock) -> None:
    got: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, wait_for_timer, 10.0, got, "late")
        await nursery.start(Process.start_link, wait_for_timer, 5.0, got, "early")  # earlier than the sleeper's
        await nursery.start(Process.start_link, wait_for_timer, 7.5, got, "middle")
    assert got == [("early", 5.0), ("middle", 7.5), ("late", 10.0)]


async def test_a_process_that_exits_with_a_timer_pending_is_not_kept_by_the_wake_ups(
        autojump_clock: MockClock) -> None:
    async def park_then_quit() -> None:
        send_after(self_pid(), "never", 3600.0)
        assert await receive() == "quit"

    async with trio.open_nursery() as nursery:
        pids = [await nursery.start(Process.start_link, park_then_quit) for _ in range(300)]
        await trio.testing.wait_all_tasks_blocked()
        for pid in pids:
            send(pid, "quit")
    wakes = pids[0]._proc.node._wakes
    assert all(wake.proc is None or wake.proc.alive for _, _, wake in wakes)
    assert len(wakes) <= 64 * 2  # stale entries are swept, not kept for the hour
