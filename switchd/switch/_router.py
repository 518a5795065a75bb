"""The Router: a GenServer that holds the routing table and the routing policy, both replaceable live.

Registered as "router"; call sessions reach it by name, so a restarted Router is simply found again.
A lookup is answered from the table and policy the Router holds when the request reaches the front
of its mailbox, and the answer is an immutable list the caller keeps: a swap of the table or the
policy affects only lookups after it, never a call that already has its gateways.

* Hot reload: `swap_table(table)` replaces the table (and, if given, the cost function) in one
  message, so no lookup ever sees a new table with old costs. Validation happens before, in the
  caller (`switchd.config.reload_routes`): the Router only ever holds a valid table.
* Hot code swap, OTP-style: the policy is the Router's code. `Router.for_policy(policy)` is the
  Router class running that policy (its `vsn` is the policy name), and `swap_policy` upgrades the
  running server with `switchd.otp.change_code`: the server stops taking messages, the new class's
  `code_change(old_vsn, state, extra)` converts the state, and the server goes on with the new
  class — lookups queued meanwhile wait in the mailbox and are answered by the new policy. If
  code_change raises, the server keeps its old class and state and the error reaches the caller.
* A shared server never crashes on request data: the policy is user code, swapped in live, and
  a lookup runs it on a number from the wire. If it raises for one number, that lookup fails —
  its caller gets `RoutingFailed` (the session answers it as it answers an unreachable Router)
  — and the Router goes on serving every other lookup with its state unchanged. A crash would
  instead lose every lookup queued behind it and count toward the root supervisor's restart
  intensity, so a caller repeating one bad number could take the node down. Such failures are
  logged at ERROR, rate-limited (`Tally`): the first with its traceback, then a count per
  interval.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar

from switchd.otp import Caller, ChildSpec, GenServer, Reply, call, change_code, get_state, whereis
from switchd.sip import SipUri

from ._errors import NoRoute, RoutingFailed, UserUnavailable
from ._policy import CostFn, PriorityWeight, RoutingPolicy, resolve_policy
from ._registrar import NAME as REGISTRAR
from ._registrar import Registered, UnknownUser, Unregistered, contact_gateway, locate
from ._routing import Candidate, RouteTable
from ._tally import Tally

log = logging.getLogger(__name__)

NAME = "router"
"""The name the Router registers under and the client functions call."""

REGISTERED = "registered"
"""The route id a call to a registered user's contact carries (in its CDR)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterState:
    """What the Router holds between messages."""

    table: RouteTable
    policy: str  # name of the policy the running code implements (the class's vsn)
    costs: CostFn | None = None  # cost_of(gateway, number) for least_cost; None: costs unknown
    rng: random.Random  # draws the weighted-random order; seeded in tests
    swaps: int = 0  # table and policy swaps since start, for status lines
    failures: Tally = field(default_factory=lambda: Tally("routing policy failed", log, level=logging.ERROR))


# --- requests (the Router's protocol) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lookup:
    number: str


@dataclass(frozen=True, slots=True)
class _SwapTable:
    table: RouteTable
    costs: CostFn | None


@dataclass(frozen=True, slots=True)
class PolicyUpgrade:
    """The `extra` of a policy change: costs to use from now on (None: keep the current ones)."""

    costs: CostFn | None = None


# --- the server ------------------------------------------------------------------------------------


class Router(GenServer[RouterState]):
    """Answers lookups with the ordered candidates for a number; its policy is its code.

    Class attributes:
    ``policy``: the routing policy this class runs, `PriorityWeight()`.
    ``vsn``: the policy's name, handed to the next class's ``code_change`` as ``old_vsn``.
    """

    policy: ClassVar[RoutingPolicy] = PriorityWeight()
    vsn: ClassVar[Any] = PriorityWeight.name

    _classes: ClassVar[dict[type[RoutingPolicy], type[Router]]] = {}

    @classmethod
    def for_policy(cls, policy: RoutingPolicy | type[RoutingPolicy] | str) -> type[Router]:
        """The Router class running `policy` (a name in POLICIES, a policy class, or an instance of one).

        One class per policy, made once: swapping back and forth reuses them. Raises ValueError for
        an unknown policy name.
        """
        instance = resolve_policy(policy)
        kind = type(instance)
        if kind is type(Router.policy):
            return Router
        found = Router._classes.get(kind)
        if found is None:
            found = type(f"Router[{instance.name}]", (Router,), {
                "policy": instance, "vsn": instance.name, "__module__": __name__,
                "__doc__": f"The Router running the {instance.name} policy.",
            })
            Router._classes[kind] = found
        return found

    async def init(self, table: RouteTable | Callable[[], RouteTable], costs: CostFn | None = None,
                   rng: random.Random | None = None) -> RouterState:
        """Start with `table`, or with what `table()` returns (e.g. the routes file read again).

        A loader is what a supervised Router wants: restarted after a crash, it starts from the
        routes as they are now, not as they were when the node started. A loader that raises
        fails the start.
        """
        if not isinstance(table, RouteTable):
            table = table()
        log.info("router started with %d routes, policy %s", len(table), self.vsn,
                 extra={"routes": len(table), "policy": self.vsn})
        return RouterState(table=table, policy=self.vsn, costs=costs, rng=rng or random.Random())

    async def handle_call(self, request: object, caller: Caller, state: RouterState) -> Reply[RouterState]:
        match request:
            case _Lookup(number):
                try:
                    candidates = state.table.candidates(number)
                    ordered = self.policy.order(candidates, number, rng=state.rng, cost_of=state.costs)
                except Exception as exc:  # noqa: BLE001 - the policy is user code: fail this lookup only
                    state.failures.note(type(exc).__name__, "routing policy %s failed for %r: %r", self.vsn,
                                        number, exc, extra={"policy": self.vsn, "number": number},
                                        exc_info=exc)
                    return Reply(RoutingFailed(number, exc), state)
                return Reply(ordered, state)
            case _SwapTable(table, costs):
                log.info("routing table swapped: %d routes (was %d)", len(table), len(state.table),
                         extra={"routes": len(table), "previous_routes": len(state.table)})
                new = replace(state, table=table, costs=state.costs if costs is None else costs,
                              swaps=state.swaps + 1)
                return Reply(None, new)
        raise ValueError(f"router: unknown request {request!r}")

    async def code_change(self, old_vsn: Any, state: RouterState, extra: Any) -> RouterState:
        """Take over a Router that ran policy `old_vsn`: same table, this class's policy.

        `extra` may be a `PolicyUpgrade` carrying the costs the new policy should use.
        """
        costs = extra.costs if isinstance(extra, PolicyUpgrade) and extra.costs is not None else state.costs
        log.info("routing policy changed from %s to %s", old_vsn, self.vsn,
                 extra={"old_policy": old_vsn, "policy": self.vsn})
        return replace(state, policy=self.vsn, costs=costs, swaps=state.swaps + 1)

    def format_status(self, state: RouterState) -> str:
        return f"policy {state.policy}, {len(state.table)} routes, {state.swaps} swaps"


# --- client API ------------------------------------------------------------------------------------


def router_child_spec(table: RouteTable | Callable[[], RouteTable], *, policy: RoutingPolicy | type[RoutingPolicy] | str = PriorityWeight,
               costs: CostFn | None = None, rng: random.Random | None = None) -> ChildSpec:
    """The supervisor child spec of the Router, registered as "router", running `policy`.

    `table` is the routing table, or a function returning it, called at every (re)start. Give
    the function the last table that loaded and was swapped in (a reload keeps it), rather than
    one that reads the routes file: the file may have been broken since, and a start that fails
    counts towards the supervisor's restart intensity. A restarted Router runs the policy given
    here, whatever it had been swapped to.
    """
    start = partial(Router.for_policy(policy).start_link, table, costs, rng, name=NAME)
    return ChildSpec(id=NAME, start=start)


async def lookup(number: str, *, timeout: float = 1.0) -> list[Candidate]:
    """The gateways to try for `number`, best first, each with its rewritten number and route.

    Raises NoRoute when no route matches; RoutingFailed when the policy raised for this number;
    CallTimeout / NoProcess when the Router is not answering.
    """
    candidates: list[Candidate] | RoutingFailed = await call(NAME, _Lookup(number), timeout=timeout)
    if isinstance(candidates, RoutingFailed):
        raise candidates
    if not candidates:
        raise NoRoute(number)
    return candidates


async def route_call(uri: SipUri, number: str, *, timeout: float = 1.0) -> list[Candidate]:
    """The candidates for a call to the Request-URI `uri` dialling `number`: a user's phones, else routes.

    With a registrar in the node (a process registered as "registrar"), a Request-URI naming a user
    of one of its domains goes to that user's registered contacts — tried one after the other,
    best q first (the failover rule moves on after a 5xx, a 408, a timeout or a transport failure;
    any other answer, a 486 say, is the user's) — before any prefix route is looked at. Raises
    UserUnavailable (480) for a user with no contact now, NoRoute (404) for a name of our domain
    that is no account; a number of our domain that is no account is routed by prefix, as is every
    Request-URI of another domain. Without a registrar: `lookup(number)`.
    """
    if whereis(REGISTRAR) is not None:
        found = await locate(uri, timeout=timeout)
        match found:
            case Registered(user, contacts):
                return [Candidate(gateway=contact_gateway(b), number=user, route_id=REGISTERED, prefix="",
                                  priority=i, weight=1, uri=b.contact) for i, b in enumerate(contacts, start=1)]
            case Unregistered(user):
                raise UserUnavailable(user)
            case UnknownUser(user):
                raise NoRoute(user)
    return await lookup(number, timeout=timeout)


async def swap_table(table: RouteTable, *, costs: CostFn | None = None, timeout: float = 5.0) -> None:
    """Replace the routing table (and the costs, if given) for every lookup from now on."""
    await call(NAME, _SwapTable(table, costs), timeout=timeout)


async def swap_policy(policy: RoutingPolicy | type[RoutingPolicy] | str, *, costs: CostFn | None = None,
                      timeout: float = 5.0) -> None:
    """Upgrade the running Router to `policy` with change_code; lookups after it use `policy`.

    `costs`, if given, replaces the cost function in the same step. Raises ValueError for an
    unknown policy name (nothing changes), or what the new code's code_change raised.
    """
    await change_code(NAME, Router.for_policy(policy), PolicyUpgrade(costs), timeout=timeout)


async def router_state(*, timeout: float = 5.0) -> RouterState:
    """The Router's current state: table, policy name, costs, swap count (for status and tests)."""
    state: RouterState = await get_state(NAME, timeout=timeout)
    return state
