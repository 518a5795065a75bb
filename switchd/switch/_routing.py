"""The routing table: longest-prefix match, digit strip/prepend, priority then weighted-random order.

Pure data and functions: no process, no I/O. The Router GenServer (`_router.py`) holds one
`RouteTable` and replaces it whole on a reload, so a lookup always sees one consistent table.

The rules, in the order they apply to a dialled number:

1. Longest prefix: of all routes whose `prefix` starts the number, only those with the longest
   prefix are candidates. The empty prefix matches every number (a default route). Several routes
   may share a prefix (one per carrier, each with its own digit rules): all of them are candidates.
   A number in international form (``+442079460000``, from ``tel:+44-20-7946-0000`` or
   ``sip:+44…``) is matched as dialled *and* by its digits after the '+', which is the
   international access code as ``00`` and ``011`` are: a route written ``44`` takes it as it
   takes ``442079460000``, a route written ``+44`` takes only the '+' form. Prefixes are compared
   by their digits, and a route written with the '+' wins a tie (it was written for that form).
2. Each (route, gateway) pair of those routes is one `Candidate`; its number is rewritten by the
   route: the first `strip` characters removed, then `prepend` put in front — of the number in the
   form its prefix is written in, so a route written ``44`` sends ``442079460000`` for ``+44…``
   (``prepend = "+"`` puts the '+' back), while ``+44`` routes and the default route send the
   number as dialled.
3. Order (the `priority_weight` policy): lower `priority` first, as DNS SRV records (RFC 2782 §"Usage
   rules"); within one priority a weighted random draw without replacement: each remaining
   candidate comes next with probability weight / sum of remaining weights. A weight of 0 is only
   drawn after every positive weight of its priority, in uniform random order.

The random source is a `random.Random` handed in by the caller, so tests and benchmarks are
deterministic with a seeded one.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby


class Transport(StrEnum):
    """The transport a SIP peer is reached over (a gateway's, or a registered contact's)."""

    TCP = "tcp"
    UDP = "udp"

    @property
    def reliable(self) -> bool:
        """True for TCP: the transport retransmits, the SIP transactions do not (RFC 3261 §17)."""
        return self is Transport.TCP

    @property
    def via(self) -> str:
        """The name in a Via header's sent-protocol: ``TCP``, ``UDP``."""
        return self.value.upper()


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkRegistration:
    """How switchd registers itself with a gateway (a SIP trunk that wants a REGISTER), see `_trunk`.

    The password is kept as given (a client needs it to answer a challenge) and never shown: it
    is left out of the repr, so no log line or traceback that shows a Gateway shows it.
    """

    username: str  # the digest username, and the user part of the AOR switchd registers
    password: str = field(repr=False)
    expires: int = 3600  # seconds asked for; the gateway may grant less
    domain: str | None = None  # the AOR's host; None: the gateway's host

    def __post_init__(self) -> None:
        if self.expires < 60:
            raise ValueError(f"registration of {self.username!r}: expires must be >= 60 s, not {self.expires}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway:
    """A SIP peer calls are sent to: a carrier, a PBX, a simulated callee, or a registered phone's contact."""

    name: str
    host: str
    port: int
    rate_plan: str | None = None  # the plan billing rates calls through this gateway with; None: default
    registration: TrunkRegistration | None = None  # register with it (a trunk that asks for it); None: don't
    transport: Transport = Transport.TCP  # what its B-legs are sent over
    tcp_fallback: bool = True  # a UDP gateway takes TCP too: a request too large for UDP goes over TCP (§18.1.1)

    @property
    def address(self) -> str:
        """`host:port`, the form the configuration and the logs use."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One gateway of a route, with its place in the order."""

    gateway: Gateway
    priority: int = 1  # lower is tried first
    weight: int = 1  # share among the targets of equal priority; 0: only after all positive weights

    def __post_init__(self) -> None:
        if self.priority < 0 or self.weight < 0:
            raise ValueError(f"{self.gateway.name}: priority and weight must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Numbers starting with `prefix` go to `targets`, rewritten by `strip` and `prepend`."""

    id: str  # names the route in CDRs and logs
    prefix: str
    targets: tuple[Target, ...]
    strip: int = 0  # characters removed from the front of the number before `prepend`
    prepend: str = ""  # put in front of the number after `strip`

    def __post_init__(self) -> None:
        if self.strip < 0:
            raise ValueError(f"route {self.id!r}: strip must be >= 0, not {self.strip}")
        if not self.targets:
            raise ValueError(f"route {self.id!r}: no gateways")

    def rewrite(self, number: str) -> str:
        """`number` as it is sent to this route's gateways."""
        return self.prepend + number[self.strip :]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One gateway to try for a call, with the number to send it and what the CDR records."""

    gateway: Gateway
    number: str  # rewritten by the route (strip, prepend)
    route_id: str
    prefix: str  # the matched prefix
    priority: int
    weight: int
    uri: str | None = None  # the B-leg's Request-URI when it is not number@gateway: a registered Contact


class RouteTable:
    """An immutable set of routes indexed by prefix; `match()` is O(length of the number)."""

    __slots__ = ("_by_prefix", "_routes")

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: tuple[Route, ...] = tuple(routes)
        ids = [route.id for route in self._routes]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate route ids: {', '.join(duplicates)}")
        by_prefix: dict[str, list[Route]] = {}
        for route in self._routes:
            by_prefix.setdefault(route.prefix, []).append(route)
        self._by_prefix = {prefix: tuple(rs) for prefix, rs in by_prefix.items()}

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route, in the order they were given."""
        return self._routes

    @property
    def gateways(self) -> tuple[Gateway, ...]:
        """Every gateway some route names, each once, in order of first use."""
        seen: dict[str, Gateway] = {}
        for route in self._routes:
            for target in route.targets:
                seen.setdefault(target.gateway.name, target.gateway)
        return tuple(seen.values())

    def __len__(self) -> int:
        return len(self._routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RouteTable) and self._routes == other._routes

    def __hash__(self) -> int:
        return hash(self._routes)

    def __repr__(self) -> str:
        return f"RouteTable({len(self._routes)} routes)"

    def match(self, number: str) -> tuple[Route, ...]:
        """The routes with the longest prefix that starts `number`; empty if none does."""
        return self._match(number)[0]

    def _longest(self, number: str, shortest: int = 0) -> tuple[int, tuple[Route, ...]]:
        for length in range(len(number), shortest - 1, -1):
            routes = self._by_prefix.get(number[:length])
            if routes is not None:
                return length, routes
        return -1, ()

    def _match(self, number: str) -> tuple[tuple[Route, ...], str]:
        """The routes for `number` and the number in the form their prefix is written in (rule 1)."""
        length, routes = self._longest(number)
        if number[:1] == "+":
            digits = number[1:]
            # A route of digits must beat the '+' form's match on digits alone (a '+' prefix of
            # n characters holds n-1 digits; the empty prefix, 0): a tie stays with the '+' form.
            _, digit_routes = self._longest(digits, max(length, 1))
            if digit_routes:
                return digit_routes, digits
        return routes, number

    def candidates(self, number: str) -> list[Candidate]:
        """Every (route, gateway) pair of `match(number)`, in table order, number rewritten."""
        routes, routed = self._match(number)
        return [
            Candidate(
                gateway=target.gateway,
                number=route.rewrite(routed),
                route_id=route.id,
                prefix=route.prefix,
                priority=target.priority,
                weight=target.weight,
            )
            for route in routes
            for target in route.targets
        ]


def order_by_priority_weight(candidates: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """`candidates` by ascending priority, each priority drawn in weighted random order (see above)."""
    ordered: list[Candidate] = []
    for _, group in groupby(sorted(candidates, key=lambda c: c.priority), key=lambda c: c.priority):
        ordered.extend(_weighted_shuffle(list(group), rng))
    return ordered


def _weighted_shuffle(group: list[Candidate], rng: random.Random) -> list[Candidate]:
    weighted = [c for c in group if c.weight > 0]
    unweighted = [c for c in group if c.weight == 0]
    drawn: list[Candidate] = []
    total = sum(c.weight for c in weighted)
    while weighted:
        point = rng.randrange(total)
        for index, candidate in enumerate(weighted):
            point -= candidate.weight
            if point < 0:
                drawn.append(weighted.pop(index))
                total -= candidate.weight
                break
    rng.shuffle(unweighted)
    return drawn + unweighted
