"""switchd.switch: the softswitch — routing, the Router, call sessions, SIP connections."""

from ._errors import NoRoute, Overloaded, SwitchError
from ._policy import (
    POLICIES,
    CostFn,
    LeastCost,
    PriorityWeight,
    RoutingPolicy,
    costs_from_rates,
    resolve_policy,
)
from ._router import (
    PolicyUpgrade,
    Router,
    RouterState,
    lookup,
    router_child_spec,
    router_state,
    swap_policy,
    swap_table,
)
from ._routing import Candidate, Gateway, Route, RouteTable, Target, order_by_priority_weight

__all__ = [  # sorted; tests/test_exports.py checks it against the public names
    "Candidate",
    "CostFn",
    "Gateway",
    "LeastCost",
    "NoRoute",
    "Overloaded",
    "POLICIES",
    "PolicyUpgrade",
    "PriorityWeight",
    "Route",
    "RouteTable",
    "Router",
    "RouterState",
    "RoutingPolicy",
    "SwitchError",
    "Target",
    "costs_from_rates",
    "lookup",
    "order_by_priority_weight",
    "resolve_policy",
    "router_child_spec",
    "router_state",
    "swap_policy",
    "swap_table",
]
