"""CallStats: calls per second over exact windows, setup-latency percentiles and buckets."""

from __future__ import annotations

from datetime import UTC, datetime

import trio
from prometheus_client.parser import text_string_to_metric_families
from trio.testing import MockClock

from switchd.api import CallStats, MetricsHandler, Scrape
from switchd.billing import Disposition, HangupParty
from switchd.otp import LoopLag
from switchd.switch import Admission, CallAnswered, CallEnded, CallFailover, CallSetup

from ._fakes import make_state

AT = datetime(2026, 12, 2, tzinfo=UTC)


async def test_calls_per_second_count_the_attempts_inside_each_window(autojump_clock: MockClock) -> None:
    stats = CallStats()
    for _ in range(30):
        stats.attempt()
    await trio.sleep(55.0)
    for _ in range(10):
        stats.attempt()
    assert (stats.cps(60.0), stats.cps(10.0)) == (40 / 60, 10 / 10)
    await trio.sleep(10.0)  # the first 30 are more than a minute old now
    assert (stats.cps(60.0), stats.cps(10.0), stats.attempts) == (10 / 60, 0.0, 40)


def test_percentiles_come_from_the_last_thousand_answers_and_none_before_any() -> None:
    stats = CallStats()
    assert stats.percentiles() == {"p50": None, "p95": None, "p99": None}
    for ms in range(1, 1101):  # 1..1100 ms: the first 100 fall out of the window
        stats.answered(ms / 1000)
    assert stats.percentiles() == {"p50": 0.601, "p95": 1.051, "p99": 1.091}
    assert stats.setup_count == 1100 and sum(stats.setup_buckets) == 1100  # every one under 2.5 s


async def test_the_handler_adds_up_the_call_events_the_scrape_exposes() -> None:
    state = make_state()
    handler = MetricsHandler()
    stats = await handler.init(state.stats)
    for event in (CallSetup("c1", AT, "a", "b", "n"), CallFailover("c1", AT, "gw1", "503", "gw2", 2),
                  CallAnswered("c1", AT, "gw2", 0.02), "unrelated",
                  CallEnded("c1", AT, Disposition.ANSWERED, 200, HangupParty.CALLER, "bye", 3.0, "gw2")):
        stats = await handler.handle_event(event, stats)
    text = state.metrics.render(Scrape(None, [], 1.5)).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("switchd_call_attempts_total", ())] == 1
    assert samples[("switchd_call_failovers_total", (("gateway", "gw1"),))] == 1
    assert samples[("switchd_calls_total", (("disposition", "ANSWERED"),))] == 1
    assert samples[("switchd_call_setup_seconds_bucket", (("le", "0.025"),))] == 1
    assert samples[("switchd_call_setup_seconds_bucket", (("le", "0.01"),))] == 0
    assert samples[("switchd_billing_store_up", ())] == 0  # the store did not answer this scrape
    assert samples[("switchd_uptime_seconds", ())] == 1.5
    assert ("switchd_billing_db_up", ()) not in samples  # unknown is not reported as down
    assert ("switchd_loop_lag_seconds", ()) not in samples  # not measured: limits.max_loop_lag is off


def test_a_measured_loop_lag_is_exposed_as_its_mean_and_its_worst() -> None:
    lag = LoopLag(weight=0.5)
    lag.record(0.2)
    lag.record(0.0)
    state = make_state(admission=Admission(loop_lag=lag, max_loop_lag=0.05))
    text = state.metrics.render(Scrape(None, [], 1.0)).decode()
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    assert (samples["switchd_loop_lag_seconds"], samples["switchd_loop_lag_max_seconds"]) == (0.05, 0.2)


async def test_each_node_has_a_registry_of_its_own_so_nodes_in_one_process_do_not_mix() -> None:
    first, second = make_state(), make_state()
    first.stats.attempt()

    def attempts(text: bytes) -> float:
        [family] = [f for f in text_string_to_metric_families(text.decode()) if f.name == "switchd_call_attempts"]
        return family.samples[0].value

    assert first.metrics.registry is not second.metrics.registry
    scrape = Scrape(None, [], 0.0)
    assert (attempts(first.metrics.render(scrape)), attempts(second.metrics.render(scrape))) == (1, 0)
