"""Reports: the callback is per trio run, replaceable, and its own failures never break a supervisor."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from switchd.otp import (
    ChildSpec,
    Report,
    ReportKind,
    ServerExited,
    Supervisor,
    call,
    set_report_handler,
    whereis,
)

from ._workers import Journal, Worker


async def test_set_report_handler_returns_the_previous_handler() -> None:
    first: list[Report] = []
    assert set_report_handler(first.append) is None
    assert set_report_handler(None) == first.append


async def test_a_failing_report_handler_is_logged_and_the_supervisor_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(report: Report) -> None:
        raise RuntimeError("metrics down")

    set_report_handler(broken)
    journal = Journal()
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [ChildSpec("w", partial(Worker.start_link, journal, "w", name="w"))])
        with pytest.raises(ServerExited):
            await call("w", "crash")
        await trio.testing.wait_all_tasks_blocked()
        assert whereis("w") is not None  # restarted despite the broken handler
        nursery.cancel_scope.cancel()
    assert "report handler" in caplog.text and "metrics down" in caplog.text


def test_report_handlers_do_not_leak_between_trio_runs() -> None:
    seen: list[ReportKind] = []

    async def crash_once(install: bool) -> None:
        if install:
            set_report_handler(lambda r: seen.append(r.kind))
        journal = Journal()
        async with trio.open_nursery() as nursery:
            await nursery.start(Supervisor.start_link,
                                [ChildSpec("w", partial(Worker.start_link, journal, "w", name="w"))])
            with pytest.raises(ServerExited):
                await call("w", "crash")
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    trio.run(crash_once, True)
    trio.run(crash_once, False)
    assert seen == [ReportKind.CRASH, ReportKind.RESTART]
