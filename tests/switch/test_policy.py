"""Routing policies: priority_weight and least_cost, by name or class."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from switchd.switch import (
    POLICIES,
    Gateway,
    LeastCost,
    PriorityWeight,
    Route,
    RouteTable,
    Target,
    costs_from_rates,
    resolve_policy,
)

CHEAP = Gateway(name="cheap", host="127.0.0.1", port=5071, rate_plan="cheap")
DEAR = Gateway(name="dear", host="127.0.0.1", port=5072, rate_plan="dear")
UNRATED = Gateway(name="unrated", host="127.0.0.1", port=5073, rate_plan="nowhere")
RATES = {
    "cheap": {"44": Decimal("0.020"), "4420": Decimal("0.050")},
    "dear": {"44": Decimal("0.030")},
}
TABLE = RouteTable([Route(id="uk", prefix="44", strip=2, prepend="0", targets=(
    Target(gateway=UNRATED, priority=1), Target(gateway=DEAR, priority=2), Target(gateway=CHEAP, priority=3),
))])


def names(policy: PriorityWeight | LeastCost, number: str, cost_of: object = None) -> list[str]:
    cost = costs_from_rates(RATES) if cost_of is None else cost_of
    ordered = policy.order(TABLE.candidates(number), number, rng=random.Random(1), cost_of=cost)  # type: ignore[arg-type]
    return [c.gateway.name for c in ordered]


def test_priority_weight_ignores_cost() -> None:
    assert names(PriorityWeight(), "441612345678") == ["unrated", "dear", "cheap"]


def test_least_cost_puts_the_cheapest_rate_first_and_unknown_costs_last() -> None:
    assert names(LeastCost(), "441612345678") == ["cheap", "dear", "unrated"]


def test_least_cost_uses_the_longest_prefix_of_the_dialled_number_in_each_plan() -> None:
    # cheap charges 0.050 for 4420…, more than dear's 0.030 for 44…; costs use the number as dialled,
    # not the rewritten "020…" the gateway is sent.
    assert names(LeastCost(), "442071234567") == ["dear", "cheap", "unrated"]


def test_least_cost_breaks_equal_costs_by_priority() -> None:
    def flat(gateway: Gateway, number: str) -> Decimal:
        return Decimal("0.01")

    assert names(LeastCost(), "441612345678", flat) == ["unrated", "dear", "cheap"]


def test_least_cost_without_costs_orders_as_priority_weight() -> None:
    candidates = TABLE.candidates("441")
    assert LeastCost().order(candidates, "441", rng=random.Random(3), cost_of=None) == PriorityWeight().order(
        candidates, "441", rng=random.Random(3), cost_of=None
    )


def test_costs_from_rates_uses_the_default_plan_for_gateways_without_one() -> None:
    cost_of = costs_from_rates(RATES, default_plan="dear")
    plain = Gateway(name="plain", host="h", port=1)
    assert cost_of(plain, "4412") == Decimal("0.030")
    assert costs_from_rates(RATES)(plain, "4412") is None
    assert cost_of(CHEAP, "33") is None


def test_a_policy_is_resolved_from_a_name_a_class_or_an_instance() -> None:
    assert resolve_policy("least_cost") == LeastCost()
    assert resolve_policy(PriorityWeight) == PriorityWeight()
    instance = LeastCost()
    assert resolve_policy(instance) is instance
    assert sorted(POLICIES) == ["least_cost", "priority_weight"]


def test_an_unknown_policy_name_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown routing policy 'cheapest' \(known: least_cost, priority_weight\)"):
        resolve_policy("cheapest")


def test_a_cost_function_that_raises_ranks_that_gateway_as_unknown_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def flaky(gateway: Gateway, number: str) -> Decimal:
        if gateway is DEAR:
            raise LookupError("rate table unavailable")
        return Decimal("0.5")

    assert names(LeastCost(), "441612345678", flaky) == ["unrated", "cheap", "dear"]
    assert "via gateway dear failed; ranked as unknown" in caplog.text
