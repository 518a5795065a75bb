"""Tally: exact counts by cause, and a log of the first event then at most one summary per interval."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from switchd.switch import Cause, Tally, sip_cause

log = logging.getLogger("tests.tally")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tests.tally"]


async def test_a_burst_logs_its_first_event_then_one_summary_per_interval_and_counts_every_event(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    tally = Tally("refused", log, interval=10.0)
    for _ in range(240):  # 30 s of refusals, 16 a second
        tally.note(Cause.CAPACITY, "refused %s", "call")
        tally.note(Cause.RATE, "refused %s", "call")
        await trio.sleep(0.125)
    logged = lines(caplog)
    assert logged[0] == "refused call (more are summarised every 10s)"
    assert len(logged) == 3  # the first, then one line per 10 s: not 480
    assert logged[1] == "refused 160 in the last 10s: capacity=80, rate=80"
    stats = tally.statistics()
    assert (stats.total, stats[Cause.CAPACITY], stats[Cause.RATE], stats["never"]) == (480, 240, 240, 0)


async def test_after_a_quiet_interval_the_next_event_is_logged_as_it_happened(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    tally = Tally("refused", log, interval=5.0)
    tally.note("a", "first a")
    await trio.sleep(6.0)
    tally.note("b", "first b")
    assert lines(caplog) == ["first a (more are summarised every 5s)", "first b (more are summarised every 5s)"]


async def test_the_tail_of_a_burst_reaches_the_log_with_the_next_event(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    tally = Tally("refused", log, interval=5.0)
    for _ in range(3):
        tally.note("a", "one a")
    await trio.sleep(60.0)
    tally.note("a", "one a")
    assert lines(caplog)[-1] == "refused 3 in the last 60s: a=3"


async def test_count_counts_without_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tally = Tally("refused", log)
    tally.count(sip_cause(400))
    tally.count(sip_cause(400))
    assert tally.statistics()["sip_400"] == 2
    assert lines(caplog) == []


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        Tally("x", log, interval=0)
