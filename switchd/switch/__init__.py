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
from ._routing import Candidate, Gateway, Route, RouteTable, Target, order_by_priority_weight

__all__ = [  # sorted; tests/test_exports.py checks it against the public names
    "Candidate",
    "CostFn",
    "Gateway",
    "LeastCost",
    "NoRoute",
    "Overloaded",
    "POLICIES",
    "PriorityWeight",
    "Route",
    "RouteTable",
    "RoutingPolicy",
    "SwitchError",
    "Target",
    "costs_from_rates",
    "order_by_priority_weight",
    "resolve_policy",
]
