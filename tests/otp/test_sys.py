"""sys operations: get_state, replace_state, suspend/resume, change_code (hot code swap)."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import pytest
import trio

from switchd.otp import (
    Caller,
    GenServer,
    NoReply,
    NotABehaviour,
    Process,
    Reply,
    call,
    cast,
    change_code,
    get_state,
    receive,
    replace_state,
    resume,
    suspend,
)

from .test_state_machine import Phone


class V1(GenServer[dict[str, int]]):
    vsn = 1

    async def init(self) -> dict[str, int]:
        return {"hits": 0}

    async def handle_call(self, request: Any, caller: Caller, state: dict[str, int]) -> Reply[dict[str, int]]:
        return Reply(("v1", state["hits"]), state)

    async def handle_cast(self, request: Any, state: dict[str, int]) -> NoReply[dict[str, int]]:
        return NoReply({**state, "hits": state["hits"] + 1})


class V2(V1):
    vsn = 2
    seen: ClassVar[list[tuple[object, object, object]]] = []

    async def code_change(self, old_vsn: Any, state: dict[str, int], extra: Any) -> dict[str, int]:
        V2.seen.append((old_vsn, dict(state), extra))
        return {"hits": state["hits"], "bonus": extra}

    async def handle_call(self, request: Any, caller: Caller, state: dict[str, int]) -> Reply[dict[str, int]]:
        return Reply(("v2", state["hits"] + state["bonus"]), state)


class Broken(V1):
    async def code_change(self, old_vsn: Any, state: dict[str, int], extra: Any) -> dict[str, int]:
        raise KeyError("cannot convert")


async def test_get_state_and_replace_state() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(V1.start_link)
        cast(pid, "hit")
        assert await get_state(pid) == {"hits": 1}
        assert await replace_state(pid, lambda s: {**s, "hits": 10}) == {"hits": 10}
        assert await call(pid, "q") == ("v1", 10)
        nursery.cancel_scope.cancel()


async def test_a_failing_replace_state_raises_and_keeps_the_state() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(V1.start_link)

        def bad(state: dict[str, int]) -> dict[str, int]:
            raise ValueError("nope")

        with pytest.raises(ValueError, match="nope"):
            await replace_state(pid, bad)
        assert await get_state(pid) == {"hits": 0}
        nursery.cancel_scope.cancel()


async def test_a_suspended_server_queues_messages_but_answers_sys_until_resumed() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(V1.start_link)
        await suspend(pid)
        cast(pid, "hit")
        cast(pid, "hit")
        answers: list[object] = []

        async def ask() -> None:
            answers.append(await call(pid, "q"))

        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []
        assert await get_state(pid) == {"hits": 0}
        await resume(pid)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == [("v1", 2)]
        nursery.cancel_scope.cancel()


async def test_change_code_calls_code_change_on_the_new_class_and_swaps_behaviour() -> None:
    V2.seen = []
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(partial(V1.start_link, name="svc"))
        cast(pid, "hit")
        await suspend("svc")
        await change_code("svc", V2, 100)
        await resume("svc")
        assert V2.seen == [(1, {"hits": 1}, 100)]
        assert await call("svc", "q") == ("v2", 101)
        cast("svc", "hit")  # inherited handle_cast still works on the new state
        assert await call("svc", "q") == ("v2", 102)
        nursery.cancel_scope.cancel()


async def test_a_failing_code_change_keeps_the_old_code_and_state() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(V1.start_link)
        with pytest.raises(KeyError, match="cannot convert"):
            await change_code(pid, Broken, old_vsn="explicit")
        assert await call(pid, "q") == ("v1", 0)
        nursery.cancel_scope.cancel()


async def test_sys_operations_work_on_a_state_machine_and_give_state_and_data() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        await call(pid, "dial")
        state, _data = await get_state(pid)
        assert state == "ringing"
        await replace_state(pid, lambda sd: ("idle", sd[1]))
        assert await call(pid, "status") == "idle"
        nursery.cancel_scope.cancel()


async def test_sys_operations_on_a_plain_process_fail_clearly() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Process.start_link, receive)
        with pytest.raises(NotABehaviour, match="plain process"):
            await get_state(pid)
        nursery.cancel_scope.cancel()
