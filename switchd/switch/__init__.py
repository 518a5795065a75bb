"""switchd.switch: the softswitch — routing, the Router, call sessions, SIP connections."""

from ._admission import Admission, AdmissionStats
from ._call_events import (
    CallAnswered,
    CallClock,
    CallEnded,
    CallEvent,
    CallFailover,
    CallProgress,
    CallSetup,
)
from ._call_legs import CallSettings
from ._call_session import CallSession, CallState, call_session_spec
from ._dispatch import Dispatcher
from ._errors import NoRoute, Overloaded, SwitchError
from ._gateway_link import GatewayLink, LinkSettings, gateway_link_spec
from ._listener import Listener, listener_spec, listening_on
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
from ._sip_connection import ConnectionSettings, SipConnection
from ._sip_service import sip_service_spec, update_gateway_links
from ._wire import GatewayFailed, Inbound, Outbound, ToGateway, a_leg_name, b_leg_key, gateway_name

__all__ = [  # sorted; tests/test_exports.py checks it against the public names
    "Admission",
    "AdmissionStats",
    "CallAnswered",
    "CallClock",
    "CallEnded",
    "CallEvent",
    "CallFailover",
    "CallProgress",
    "CallSession",
    "CallSettings",
    "CallSetup",
    "CallState",
    "Candidate",
    "ConnectionSettings",
    "CostFn",
    "Dispatcher",
    "Gateway",
    "GatewayFailed",
    "GatewayLink",
    "Inbound",
    "LeastCost",
    "LinkSettings",
    "Listener",
    "NoRoute",
    "Outbound",
    "Overloaded",
    "POLICIES",
    "PolicyUpgrade",
    "PriorityWeight",
    "Route",
    "RouteTable",
    "Router",
    "RouterState",
    "RoutingPolicy",
    "SipConnection",
    "SwitchError",
    "Target",
    "ToGateway",
    "a_leg_name",
    "b_leg_key",
    "call_session_spec",
    "costs_from_rates",
    "gateway_link_spec",
    "gateway_name",
    "listener_spec",
    "listening_on",
    "lookup",
    "order_by_priority_weight",
    "resolve_policy",
    "router_child_spec",
    "router_state",
    "sip_service_spec",
    "swap_policy",
    "swap_table",
    "update_gateway_links",
]
