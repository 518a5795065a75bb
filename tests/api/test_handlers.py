"""api.handlers keeps its event handlers on "events" across restarts, and takes them off when it stops."""

from __future__ import annotations

from functools import partial
from typing import Any

import trio
from trio.testing import MockClock

from switchd import otp
from switchd.api import HandlerSpec, TraceBuffer, TraceHandler, TraceSetup, keep_handlers
from switchd.switch import WireTap


class _Counting(otp.EventHandler[list[Any]]):
    async def init(self, arg: Any) -> list[Any]:
        assert isinstance(arg, list)
        return arg

    async def handle_event(self, event: Any, state: list[Any]) -> list[Any]:
        state.append(event)
        return state


async def test_handlers_come_back_after_the_event_manager_restarts_and_go_when_the_guard_stops(
    autojump_clock: MockClock,
) -> None:
    seen: list[Any] = []
    tap = WireTap()
    specs = [HandlerSpec("count", _Counting, seen),
             HandlerSpec("trace", TraceHandler, TraceSetup(TraceBuffer(5, 5), tap))]
    children = [otp.ChildSpec(id="events", start=partial(otp.EventManager.start_link, name="events")),
                otp.ChildSpec(id="guard", start=partial(otp.Process.start_link, keep_handlers, specs), shutdown=2.0)]
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(otp.Supervisor.start_link, children, name="top"))
        await trio.testing.wait_all_tasks_blocked()
        assert await otp.which_handlers("events") == ["count", "trace"] and tap.tracing

        await otp.stop("events", RuntimeError("chaos"))  # a crash: the supervisor starts a new one
        await trio.sleep(1.0)  # virtual: the guard looks for the new one within its back-off (<= 0.5 s)
        assert tap.tracing  # the old trace handler's terminate switched it off; the new one on again
        assert await otp.which_handlers("events") == ["count", "trace"]
        await otp.sync_notify("events", "after the restart")
        assert seen == ["after the restart"]

        await otp.terminate_child("top", "guard")  # what the API's supervisor does when it stops
        assert await otp.which_handlers("events") == [] and not tap.tracing
        nursery.cancel_scope.cancel()
