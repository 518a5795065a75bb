"""The Router GenServer: lookups, hot table reload, and hot code swap of the routing policy."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from switchd import otp
from switchd.switch import (
    Candidate,
    Gateway,
    LeastCost,
    NoRoute,
    PolicyUpgrade,
    PriorityWeight,
    Route,
    Router,
    RouterState,
    RouteTable,
    RoutingFailed,
    Target,
    lookup,
    router_child_spec,
    router_state,
    swap_policy,
    swap_table,
)

FIRST = Gateway(name="first", host="127.0.0.1", port=5071)  # priority 1, dear
CHEAP = Gateway(name="cheap", host="127.0.0.1", port=5072)  # priority 2, cheap
PRICES = {"first": Decimal("0.05"), "cheap": Decimal("0.01")}
TABLE = RouteTable([Route(id="uk", prefix="44", strip=2, prepend="0", targets=(
    Target(gateway=FIRST, priority=1), Target(gateway=CHEAP, priority=2)))])
OTHER = RouteTable([Route(id="all", prefix="", targets=(Target(gateway=CHEAP),))])
BY_POLICY = {"priority_weight": ["first", "cheap"], "least_cost": ["cheap", "first"]}


def cost_of(gateway: Gateway, number: str) -> Decimal | None:
    return PRICES.get(gateway.name)


def names(candidates: list[Candidate]) -> list[str]:
    return [c.gateway.name for c in candidates]


@asynccontextmanager
async def running(router: type[Router] = Router, table: RouteTable = TABLE) -> AsyncIterator[otp.Pid]:
    async with trio.open_nursery() as nursery:
        pid: otp.Pid = await nursery.start(partial(router.start_link, table, cost_of, random.Random(7),
                                                   name="router"))
        yield pid
        nursery.cancel_scope.cancel()


async def test_a_lookup_gives_the_gateways_best_first_with_the_number_rewritten_for_the_cdr() -> None:
    async with running():
        assert await lookup("441612345678") == [
            Candidate(gateway=FIRST, number="01612345678", route_id="uk", prefix="44", priority=1, weight=1),
            Candidate(gateway=CHEAP, number="01612345678", route_id="uk", prefix="44", priority=2, weight=1),
        ]


async def test_a_number_without_a_route_raises_no_route_and_the_router_goes_on() -> None:
    async with running():
        with pytest.raises(NoRoute, match="no route for '3312'"):
            await lookup("3312")
        assert names(await lookup("4412")) == ["first", "cheap"]


async def test_a_swapped_table_decides_the_next_lookup() -> None:
    async with running():
        await swap_table(OTHER)
        assert [(c.gateway.name, c.number) for c in await lookup("3312")] == [("cheap", "3312")]
        assert (await router_state()).swaps == 1


async def test_a_lookup_queued_before_a_swap_gets_the_old_table_and_one_after_it_the_new() -> None:
    results: dict[str, list[str]] = {}

    async def look(key: str) -> None:
        results[key] = [c.route_id for c in await lookup("4412")]

    async with running() as pid, trio.open_nursery() as nursery:
        await otp.suspend(pid)  # queue all three requests in a known order, then let them run
        nursery.start_soon(look, "before")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(swap_table, OTHER)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(look, "after")
        await trio.testing.wait_all_tasks_blocked()
        assert results == {}
        await otp.resume(pid)
    assert results == {"before": ["uk", "uk"], "after": ["all"]}


async def test_gateways_a_call_already_has_are_untouched_by_a_swap() -> None:
    async with running():
        in_flight = await lookup("4412")
        kept = list(in_flight)
        await swap_table(OTHER)
        await swap_policy("least_cost")
        assert in_flight == kept


async def test_a_table_swap_can_replace_the_costs_in_the_same_step() -> None:
    async with running(Router.for_policy("least_cost")):
        assert names(await lookup("4412")) == ["cheap", "first"]

        def reversed_costs(gateway: Gateway, number: str) -> Decimal:
            return Decimal(1) - PRICES[gateway.name]

        await swap_table(TABLE, costs=reversed_costs)
        assert names(await lookup("4412")) == ["first", "cheap"]


async def test_swapping_the_policy_changes_the_decisions_and_keeps_the_table() -> None:
    async with running():
        assert names(await lookup("4412")) == BY_POLICY["priority_weight"]
        await swap_policy("least_cost")
        assert names(await lookup("4412")) == BY_POLICY["least_cost"]
        await swap_policy(PriorityWeight)
        assert names(await lookup("4412")) == BY_POLICY["priority_weight"]
        state = await router_state()
        assert (state.policy, state.table, state.swaps) == ("priority_weight", TABLE, 2)


async def test_a_policy_swap_runs_code_change_on_the_new_code_with_the_old_version() -> None:
    seen: list[tuple[Any, Any, str]] = []

    class Traced(Router.for_policy(LeastCost)):  # type: ignore[misc]
        async def code_change(self, old_vsn: Any, state: RouterState, extra: Any) -> RouterState:
            seen.append((old_vsn, extra, type(self).vsn))
            new: RouterState = await super().code_change(old_vsn, state, extra)
            return new

    async with running() as pid:
        await otp.change_code(pid, Traced, PolicyUpgrade())
        assert seen == [("priority_weight", PolicyUpgrade(), "least_cost")]
        assert names(await lookup("4412")) == ["cheap", "first"]


async def test_a_policy_swap_can_bring_its_own_costs() -> None:
    async with running(table=TABLE) as pid:
        await otp.replace_state(pid, lambda s: RouterState(table=s.table, policy=s.policy, rng=s.rng))
        await swap_policy("least_cost")
        assert names(await lookup("4412")) == ["first", "cheap"]  # no costs: priority order
        await swap_policy("least_cost", costs=cost_of)
        assert names(await lookup("4412")) == ["cheap", "first"]


async def test_an_unknown_policy_name_is_refused_and_changes_nothing() -> None:
    async with running():
        with pytest.raises(ValueError, match="unknown routing policy 'cheapest'"):
            await swap_policy("cheapest")
        assert (await router_state()).policy == "priority_weight"


async def test_a_failing_code_change_leaves_the_old_policy_running() -> None:
    class Broken(Router.for_policy(LeastCost)):  # type: ignore[misc]
        async def code_change(self, old_vsn: Any, state: RouterState, extra: Any) -> RouterState:
            raise RuntimeError("cannot convert")

    async with running() as pid:
        with pytest.raises(RuntimeError, match="cannot convert"):
            await otp.change_code(pid, Broken)
        assert names(await lookup("4412")) == BY_POLICY["priority_weight"]
        assert (await router_state()).policy == "priority_weight"


async def test_switching_policy_100_times_under_concurrent_lookups_fails_none_and_obeys_each_switch() -> None:
    """Lookers look up nonstop while the policy flips 100 times.

    A lookup sent after switch k returned and answered before switch k+1 was sent can only have
    been decided by policy k: those are checked exactly, and every switch waits for one of them
    from a looker (besides its own check) before the next, so each switch is seen by the lookers.
    """
    policies = ["least_cost", "priority_weight"] * 50
    sent = done = 0
    seen_after = [trio.Event() for _ in range(len(policies) + 1)]
    checked = total = 0

    async def looker() -> None:
        nonlocal checked, total
        while True:
            window = done
            decision = names(await lookup("4412"))
            total += 1
            if window == sent:  # no switch was sent while this lookup was on its way
                expected = BY_POLICY[policies[window - 1]] if window else BY_POLICY["priority_weight"]
                assert decision == expected, f"after switch {window} to {policies[window - 1]}"
                checked += 1
                seen_after[window].set()

    async with running(), trio.open_nursery() as lookers:
        for _ in range(4):
            lookers.start_soon(looker)
        await seen_after[0].wait()
        for k, policy in enumerate(policies, start=1):
            sent += 1
            await swap_policy(policy)
            done += 1
            assert names(await lookup("4412")) == BY_POLICY[policy]
            await seen_after[k].wait()
        lookers.cancel_scope.cancel()
    assert (sent, done) == (100, 100)
    assert checked >= 100 and total >= checked
    # 0 failed lookups: any exception in a looker would have failed this test through the nursery.


async def test_the_child_spec_runs_a_registered_router_under_a_supervisor() -> None:
    spec = router_child_spec(TABLE, policy="least_cost", costs=cost_of, rng=random.Random(1))
    assert spec.id == "router"
    async with trio.open_nursery() as nursery:
        await nursery.start(otp.Supervisor.start_link, [spec])
        assert names(await lookup("4412")) == ["cheap", "first"]
        assert (await router_state()).policy == "least_cost"
        nursery.cancel_scope.cancel()


async def test_a_crashed_router_restarts_from_its_loader_and_is_found_again_by_name() -> None:
    tables = iter([TABLE, OTHER])
    spec = router_child_spec(lambda: next(tables), costs=cost_of, rng=random.Random(1))
    async with trio.open_nursery() as nursery:
        await nursery.start(otp.Supervisor.start_link, [spec])
        first = otp.whereis("router")
        assert names(await lookup("4412")) == ["first", "cheap"]
        with pytest.raises(otp.ServerExited, match="router: unknown request 'bogus'"):
            await otp.call("router", "bogus")
        await trio.testing.wait_all_tasks_blocked()  # the supervisor restarts it
        assert names(await lookup("3312")) == ["cheap"]  # the loader's second table
        assert otp.whereis("router") not in (None, first)
        nursery.cancel_scope.cancel()


async def test_a_lookup_with_no_router_running_is_a_clear_error() -> None:
    with pytest.raises(otp.NoProcess):
        await lookup("4412")


# --- a policy that raises ---------------------------------------------------------------------------


class Fussy(PriorityWeight):
    """A policy with a bug: it raises for numbers ending in 13."""

    name = "fussy_test"

    def order(self, candidates: Any, number: str, *, rng: random.Random, cost_of: Any) -> list[Candidate]:
        if number.endswith("13"):
            raise ZeroDivisionError(f"{number} / 0")
        return super().order(candidates, number, rng=rng, cost_of=cost_of)


async def test_a_policy_that_raises_fails_that_lookup_only_and_the_router_never_restarts(
        caplog: pytest.LogCaptureFixture) -> None:
    flags = otp.SupervisorFlags(otp.Strategy.ONE_FOR_ONE, max_restarts=5, max_seconds=10.0)
    spec = router_child_spec(TABLE, policy=Fussy, costs=cost_of, rng=random.Random(7))
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(otp.Supervisor.start_link, [spec], flags, name="top"))
        router = otp.whereis("router")
        for _ in range(20):  # more than the supervisor's intensity, had each been a crash
            with pytest.raises(RoutingFailed) as failed:
                await lookup("4413")
            assert isinstance(failed.value.error, ZeroDivisionError)
            assert names(await lookup("4420")) == ["first", "cheap"]
        assert otp.whereis("router") == router
        [child] = await otp.which_children("top")
        assert child.pid == router
        nursery.cancel_scope.cancel()
    errors = [r for r in caplog.records if r.levelname == "ERROR" and "routing policy" in r.getMessage()]
    assert len(errors) == 1 and errors[0].exc_info is not None  # the first with its traceback; then counted
