"""EventManager (gen_event): handlers added/removed at run time; a failing handler is removed."""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar

import pytest
import trio

from switchd.otp import (
    EventHandler,
    EventManager,
    OTPError,
    Report,
    ReportKind,
    add_handler,
    call_handler,
    delete_handler,
    notify,
    set_report_handler,
    sync_notify,
    which_handlers,
)


class Collector(EventHandler[list[Any]]):
    """Collects events; raises on the event "bad"; answers "events" calls."""

    stopped: ClassVar[list[tuple[str, object]]] = []

    async def init(self, label: str) -> list[Any]:
        return [label]

    async def handle_event(self, event: Any, state: list[Any]) -> list[Any]:
        if event == "bad" and state[0] == "fragile":
            raise ValueError("cannot handle bad")
        return [*state, event]

    async def handle_call(self, request: Any, state: list[Any]) -> tuple[Any, list[Any]]:
        if request == "explode":
            raise RuntimeError("explode")
        return state[1:], state

    async def terminate(self, reason: object, state: list[Any]) -> None:
        Collector.stopped.append((state[0], reason if isinstance(reason, str) else type(reason).__name__))


class Refuses(EventHandler[None]):
    async def init(self, arg: Any) -> None:
        raise LookupError("refused")


@pytest.fixture(autouse=True)
def _reset() -> None:
    Collector.stopped = []


async def test_notify_and_sync_notify_reach_every_handler_in_order() -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(EventManager.start_link, name="events"))
        await add_handler("events", "a", Collector, "a")
        await add_handler("events", "b", Collector, "b")
        notify("events", 1)  # plain def, returns at once
        await sync_notify("events", 2)
        assert await call_handler("events", "a", "events") == [1, 2]
        assert await call_handler("events", "b", "events") == [1, 2]
        assert await which_handlers("events") == ["a", "b"]
        nursery.cancel_scope.cancel()
    assert Collector.stopped == [("a", "shutdown"), ("b", "shutdown")]


async def test_delete_handler_terminates_it_and_later_events_skip_it() -> None:
    async with trio.open_nursery() as nursery:
        mgr = await nursery.start(EventManager.start_link)
        await add_handler(mgr, "a", Collector, "a")
        await delete_handler(mgr, "a")
        await sync_notify(mgr, 1)
        assert Collector.stopped == [("a", "normal")]
        assert await which_handlers(mgr) == []
        with pytest.raises(OTPError, match="no event handler 'a'"):
            await delete_handler(mgr, "a")
        nursery.cancel_scope.cancel()


async def test_a_raising_handler_is_removed_and_reported_and_the_others_go_on() -> None:
    reports: list[Report] = []
    set_report_handler(reports.append)
    async with trio.open_nursery() as nursery:
        mgr = await nursery.start(partial(EventManager.start_link, name="events"))
        await add_handler(mgr, "f", Collector, "fragile")
        await add_handler(mgr, "s", Collector, "sturdy")
        notify(mgr, "bad")
        await sync_notify(mgr, "after")
        assert await which_handlers(mgr) == ["s"]
        assert await call_handler(mgr, "s", "events") == ["bad", "after"]
        assert Collector.stopped == [("fragile", "ValueError")]
        assert [(r.kind, r.supervisor, r.child) for r in reports] == [
            (ReportKind.HANDLER_REMOVED, "events", "f")]
        nursery.cancel_scope.cancel()


async def test_a_handler_raising_in_a_call_is_removed_and_the_caller_told() -> None:
    async with trio.open_nursery() as nursery:
        mgr = await nursery.start(EventManager.start_link)
        await add_handler(mgr, "a", Collector, "a")
        with pytest.raises(OTPError, match="crashed on 'explode' and was removed"):
            await call_handler(mgr, "a", "explode")
        assert await which_handlers(mgr) == []
        nursery.cancel_scope.cancel()


async def test_add_handler_reports_a_failing_init_and_a_duplicate_id() -> None:
    async with trio.open_nursery() as nursery:
        mgr = await nursery.start(EventManager.start_link)
        with pytest.raises(LookupError, match="refused"):
            await add_handler(mgr, "r", Refuses)
        await add_handler(mgr, "a", Collector, "a")
        with pytest.raises(OTPError, match="already added"):
            await add_handler(mgr, "a", Collector, "a")
        assert await which_handlers(mgr) == ["a"]
        nursery.cancel_scope.cancel()
