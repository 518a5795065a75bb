"""Registry: unique names with automatic release, and duplicate keys for pub/sub."""

from __future__ import annotations

import pytest
import trio

from switchd.otp import (
    AlreadyRegistered,
    Down,
    NoProcess,
    Pid,
    Process,
    dispatch,
    join,
    leave,
    members,
    monitor,
    receive,
    register,
    send,
    unregister,
    whereis,
)


async def _wait_quit() -> None:
    await receive(match=lambda m: m == "quit")


async def test_register_whereis_and_unregister() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, _wait_quit)
        assert whereis("svc") is None
        register("svc", pid)
        assert whereis("svc") == pid
        unregister("svc")
        assert whereis("svc") is None
        with pytest.raises(NoProcess, match="'svc'"):
            unregister("svc")
        send(pid, "quit")


async def test_a_second_registration_of_a_live_name_fails_clearly() -> None:
    async with trio.open_nursery() as nursery:
        a = await nursery.start(Process.start_link, _wait_quit)
        b = await nursery.start(Process.start_link, _wait_quit)
        register("svc", a)
        with pytest.raises(AlreadyRegistered, match=f"'svc' is already registered to {a}"):
            register("svc", b)
        with pytest.raises(AlreadyRegistered, match="already registered as 'svc'"):
            register("other", a)
        send(a, "quit")
        send(b, "quit")


async def test_a_name_is_released_when_its_process_exits_before_monitors_fire() -> None:
    seen_at_down: list[object] = []

    async def watcher(target: Pid) -> None:
        monitor(target)
        msg = await receive()
        assert isinstance(msg, Down)
        seen_at_down.append(whereis("svc"))

    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, _wait_quit)
        register("svc", pid)
        await nursery.start(Process.start_link, watcher, pid)
        send("svc", "quit")
    assert seen_at_down == [None]
    with pytest.raises(NoProcess):
        register("svc", pid)  # a dead pid cannot take a name


async def test_duplicate_keys_dispatch_to_every_live_member_in_join_order() -> None:
    got: dict[str, list[object]] = {"a": [], "b": []}

    async def subscriber(label: str) -> None:
        join("calls")
        join("calls")  # idempotent
        while (msg := await receive()) != "quit":
            got[label].append(msg)

    async with trio.open_nursery() as nursery:
        a = await nursery.start(Process.start_link, subscriber, "a")
        b = await nursery.start(Process.start_link, subscriber, "b")
        await trio.testing.wait_all_tasks_blocked()
        assert members("calls") == [a, b]
        assert dispatch("calls", "event 1") == 2
        leave("calls", b)
        assert dispatch("calls", "event 2") == 1
        send(a, "quit")
        await trio.testing.wait_all_tasks_blocked()
        assert members("calls") == []  # released at exit
        assert dispatch("calls", "event 3") == 0
        send(b, "quit")
    assert got == {"a": ["event 1", "event 2"], "b": ["event 1"]}
