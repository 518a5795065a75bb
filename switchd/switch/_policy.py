"""Routing policies: the behaviour that orders the candidates of a longest-prefix match.

A policy is a behaviour in the OTP sense: a class with one callback, `order()`, that the Router
calls on every lookup. Policies hold no state of their own; what they need comes in as arguments
(the random source, and the cost function for `least_cost`), so the Router can replace its policy
with `change_code` at any moment and the new one decides the very next lookup.

* `priority_weight`  lower priority first, weighted random within a priority (see `_routing.py`).
* `least_cost`       cheapest first by what each gateway's rate plan charges for the dialled number;
                     gateways without a known cost come last; equal costs by priority then weight.

Costs come from the billing layer as a plain function `cost_of(gateway, number) -> Decimal | None`
(price per minute, None: unknown), or are built from a rates mapping with `costs_from_rates()`;
this module imports nothing of billing.
"""

from __future__ import annotations

import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from itertools import groupby
from typing import ClassVar

from ._routing import Candidate, Gateway, order_by_priority_weight

log = logging.getLogger(__name__)

CostFn = Callable[[Gateway, str], "Decimal | None"]
"""`cost_of(gateway, number)`: price per minute the gateway's rate plan charges for `number`, or None."""


class RoutingPolicy(ABC):
    """The routing-policy behaviour: orders the candidates for one call, best first."""

    name: ClassVar[str]  # the name the configuration and `swap_policy` use

    @abstractmethod
    def order(
        self,
        candidates: Sequence[Candidate],
        number: str,
        *,
        rng: random.Random,
        cost_of: CostFn | None,
    ) -> list[Candidate]:
        """`candidates` (all for the dialled `number`) in the order they should be tried."""

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"<policy {self.name}>"


class PriorityWeight(RoutingPolicy):
    """Lower priority first; within a priority, weighted random without replacement."""

    name = "priority_weight"

    def order(
        self,
        candidates: Sequence[Candidate],
        number: str,
        *,
        rng: random.Random,
        cost_of: CostFn | None,
    ) -> list[Candidate]:
        return order_by_priority_weight(candidates, rng)


class LeastCost(RoutingPolicy):
    """Cheapest gateway first; unknown costs last; equal costs by priority then weight.

    The cost is looked up for the number as dialled (before the route's strip/prepend), which is
    what rate decks are keyed on. Without a cost function every cost is unknown and the order is
    exactly `priority_weight`'s; a cost function that raises is logged and its cost is unknown,
    so trouble in billing never stops routing.
    """

    name = "least_cost"

    def order(
        self,
        candidates: Sequence[Candidate],
        number: str,
        *,
        rng: random.Random,
        cost_of: CostFn | None,
    ) -> list[Candidate]:
        if cost_of is None:
            return order_by_priority_weight(candidates, rng)
        costs = {id(c): _cost(cost_of, c.gateway, number) for c in candidates}

        def key(candidate: Candidate) -> tuple[bool, Decimal]:
            cost = costs[id(candidate)]
            return (cost is None, Decimal(0) if cost is None else cost)

        ordered: list[Candidate] = []
        for _, group in groupby(sorted(candidates, key=key), key=key):
            ordered.extend(order_by_priority_weight(list(group), rng))
        return ordered


def _cost(cost_of: CostFn, gateway: Gateway, number: str) -> Decimal | None:
    # Billing's trouble must not stop calls: a cost that cannot be had is an unknown cost.
    try:
        return cost_of(gateway, number)
    except Exception:
        log.exception("cost of %r via gateway %s failed; ranked as unknown", number, gateway.name,
                      extra={"number": number, "gateway": gateway.name})
        return None


POLICIES: Mapping[str, type[RoutingPolicy]] = {
    policy.name: policy for policy in (PriorityWeight, LeastCost)
}
"""Every routing policy by name."""


def resolve_policy(policy: RoutingPolicy | type[RoutingPolicy] | str) -> RoutingPolicy:
    """A policy instance from an instance, a policy class, or a name in `POLICIES`.

    Raises ValueError naming the known policies when `policy` is an unknown name.
    """
    if isinstance(policy, RoutingPolicy):
        return policy
    if isinstance(policy, str):
        try:
            return POLICIES[policy]()
        except KeyError:
            known = ", ".join(sorted(POLICIES))
            raise ValueError(f"unknown routing policy {policy!r} (known: {known})") from None
    return policy()


def costs_from_rates(
    rates: Mapping[str, Mapping[str, Decimal]], *, default_plan: str | None = None
) -> CostFn:
    """A `cost_of` over `rates` (rate plan → number prefix → price per minute).

    The gateway's `rate_plan` (or `default_plan` when it has none) picks the plan; the longest
    prefix of the number in that plan gives the price. No plan or no prefix: None (unknown).
    """
    plans = {plan: dict(prices) for plan, prices in rates.items()}

    def cost_of(gateway: Gateway, number: str) -> Decimal | None:
        plan = gateway.rate_plan if gateway.rate_plan is not None else default_plan
        prices = plans.get(plan) if plan is not None else None
        if prices is None:
            return None
        for length in range(len(number), -1, -1):
            price = prices.get(number[:length])
            if price is not None:
                return price
        return None

    return cost_of
