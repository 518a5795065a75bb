"""The routing table: longest-prefix match, digit strip/prepend, priority then weighted-random order.

Pure data and functions: no process, no I/O. The Router GenServer (`_router.py`) holds one
`RouteTable` and replaces it whole on a reload, so a lookup always sees one consistent table.

The rules, in the order they apply to a dialled number:

1. Longest prefix: of all routes whose `prefix` starts the number, only those with the longest
   prefix are candidates. The empty prefix matches every number (a default route). Several routes
   may share a prefix (one per carrier, each with its own digit rules): all of them are candidates.
2. Each (route, gateway) pair of those routes is one `Candidate`; its number is rewritten by the
   route: the first `strip` characters removed, then `prepend` put in front.
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
from dataclasses import dataclass
from itertools import groupby


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway:
    """A SIP peer calls are sent to: a carrier, a PBX, or a simulated callee."""

    name: str
    host: str
    port: int
    rate_plan: str | None = None  # the plan billing rates calls through this gateway with; None: default

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
        for length in range(len(number), -1, -1):
            routes = self._by_prefix.get(number[:length])
            if routes is not None:
                return routes
        return ()

    def candidates(self, number: str) -> list[Candidate]:
        """Every (route, gateway) pair of `match(number)`, in table order, number rewritten."""
        return [
            Candidate(
                gateway=target.gateway,
                number=route.rewrite(number),
                route_id=route.id,
                prefix=route.prefix,
                priority=target.priority,
                weight=target.weight,
            )
            for route in self.match(number)
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
