"""Rating: the price of a call, as plain functions over an in-memory rate deck.

The rule (docs/billing.md has a worked example):

1. The tariff is the longest prefix of the callee's E.164 digits (without '+') among the deck's
   tariffs valid at the call's setup time (`valid_from <= setup < valid_to`, a missing bound is
   open). No match → the CDR is written unrated (`rated = False`, no cost), never dropped.
2. Billed seconds come from the billable time (answer → end, in ms): 0 ms bills 0 s; up to
   `first_increment` bills the first increment; beyond it, each further started
   `next_increment` is billed whole. 61.2 s on 60/60 bills 120 s, on 30/6 bills 66 s, on 1/1
   bills 62 s. This is the smallest count of the form first + k·next that covers the time.
3. cost = connect_fee + price_per_minute × billed_seconds / 60, computed exactly in Decimal and
   rounded once per CDR, half up, to six decimal places (the precision the database stores).
   Nothing is rounded per increment or per minute.
4. An unanswered call bills 0 s and costs nothing, unless its plan has `bill_unanswered`, in which
   case it costs the matched tariff's connect fee.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from ._types import MICRO, to_money

# Intermediate arithmetic at 50 significant digits. Prices have at most 6 places, so price ×
# seconds is exact, and price × seconds / 60 is either exact or a repeating decimal that lies at
# least 1/60 of a millionth away from any half-way point; 50 digits cannot move it across one, so
# the single quantize() below rounds exactly as rounding the true fraction would.
_EXACT = decimal.Context(prec=50, rounding=ROUND_HALF_UP, traps=[decimal.InvalidOperation])


@dataclass(frozen=True, slots=True, kw_only=True)
class Tariff:
    """One line of a rate deck: the price of calls to numbers starting with `prefix`."""

    prefix: str  # E.164 digits without '+'
    price_per_minute: Decimal
    connect_fee: Decimal = Decimal(0)
    first_increment: int = 60  # seconds
    next_increment: int = 60  # seconds
    currency: str = "USD"
    description: str = ""
    valid_from: datetime | None = None  # inclusive; None: since always
    valid_to: datetime | None = None  # exclusive; None: until further notice

    def __post_init__(self) -> None:
        if not self.prefix.isascii() or not self.prefix.isdigit():
            raise ValueError(f"tariff prefix {self.prefix!r} must be digits")
        if self.first_increment < 1 or self.next_increment < 1:
            raise ValueError(
                f"tariff {self.prefix}: increments {self.first_increment}/{self.next_increment} must be ≥ 1 s"
            )
        for name in ("price_per_minute", "connect_fee"):
            value = getattr(self, name)
            if to_money(value) < 0:
                raise ValueError(f"tariff {self.prefix}: {name} {value} is negative")
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValueError(f"tariff {self.prefix}: valid_to is not after valid_from")

    def valid_at(self, when: datetime) -> bool:
        """True if this tariff applies to a call set up at `when`."""
        return (self.valid_from is None or self.valid_from <= when) and (
            self.valid_to is None or when < self.valid_to
        )


@dataclass(frozen=True, slots=True)
class RateDeck:
    """A rate plan's whole deck, indexed by prefix for longest-prefix match. Immutable: swap it."""

    plan: str
    tariffs: tuple[Tariff, ...]
    currency: str = "USD"
    bill_unanswered: bool = False  # True: unanswered calls pay the connect fee
    _index: dict[str, tuple[Tariff, ...]] = field(init=False, repr=False, compare=False)
    _longest: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, list[Tariff]] = {}
        for tariff in self.tariffs:
            index.setdefault(tariff.prefix, []).append(tariff)
        object.__setattr__(self, "_index", {p: tuple(ts) for p, ts in index.items()})
        object.__setattr__(self, "_longest", max((len(p) for p in index), default=0))

    def match(self, number: str, when: datetime) -> Tariff | None:
        """The tariff for E.164 `number` ('+' optional) at `when`: the longest valid prefix."""
        digits = number.removeprefix("+")
        for length in range(min(len(digits), self._longest), 0, -1):
            for tariff in self._index.get(digits[:length], ()):
                if tariff.valid_at(when):
                    return tariff
        return None

    @classmethod
    def of(cls, plan: str, tariffs: Iterable[Tariff], **options: object) -> RateDeck:
        """A deck from any iterable of tariffs (keyword options as the constructor's)."""
        return cls(plan, tuple(tariffs), **options)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Rating:
    """What rating decided for one call: the tariff used, the billed seconds and the cost."""

    plan: str
    tariff: Tariff
    billed_seconds: int
    cost: Decimal

    @property
    def currency(self) -> str:
        return self.tariff.currency


def billed_seconds(billable_ms: int, first_increment: int, next_increment: int) -> int:
    """Seconds billed for `billable_ms` of talk: the smallest first + k·next covering it (0 → 0)."""
    if billable_ms < 0:
        raise ValueError(f"billable time {billable_ms} ms is negative")
    if billable_ms == 0:
        return 0
    first_ms = first_increment * 1000
    if billable_ms <= first_ms:
        return first_increment
    step_ms = next_increment * 1000
    steps = -(-(billable_ms - first_ms) // step_ms)  # ceiling division, exact on integers
    return first_increment + steps * next_increment


def call_cost(tariff: Tariff, seconds: int, *, answered: bool, bill_unanswered: bool = False) -> Decimal:
    """The cost of `seconds` billed on `tariff`, rounded once, half up, to six places."""
    if not answered:
        return to_money(tariff.connect_fee) if bill_unanswered else Decimal("0.000000")
    exact = _EXACT.add(
        tariff.connect_fee, _EXACT.divide(_EXACT.multiply(tariff.price_per_minute, seconds), 60)
    )
    return exact.quantize(MICRO, rounding=ROUND_HALF_UP)


def rate_call(
    deck: RateDeck, number: str | None, *, setup_at: datetime, billable_ms: int | None
) -> Rating | None:
    """Rate one call on `deck`; None if `number` is missing or no tariff matches (unrated).

    `billable_ms` is answer → end in ms, or None for a call that was never answered.
    """
    if number is None:
        return None
    tariff = deck.match(number, setup_at)
    if tariff is None:
        return None
    if billable_ms is None:
        seconds = 0
    else:
        seconds = billed_seconds(billable_ms, tariff.first_increment, tariff.next_increment)
    cost = call_cost(tariff, seconds, answered=billable_ms is not None, bill_unanswered=deck.bill_unanswered)
    return Rating(deck.plan, tariff, seconds, cost)
