"""Rating: longest prefix, increments, exact Decimal cost rounded once, unanswered and unrated calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.billing import RateDeck, Tariff, billed_seconds, call_cost, rate_call

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
D = Decimal


def _deck(*tariffs: Tariff, bill_unanswered: bool = False) -> RateDeck:
    return RateDeck("default", tariffs, bill_unanswered=bill_unanswered)


DECK = _deck(
    Tariff(prefix="44", price_per_minute=D("0.020000")),
    Tariff(
        prefix="447",
        price_per_minute=D("0.150000"),
        connect_fee=D("0.010000"),
        first_increment=30,
        next_increment=6,
    ),
    Tariff(prefix="4420", price_per_minute=D("0.010000"), first_increment=1, next_increment=1),
)


def test_the_longest_matching_prefix_wins() -> None:
    assert DECK.match("+447700900123", T0) is not None
    assert DECK.match("+447700900123", T0).prefix == "447"  # type: ignore[union-attr]
    assert DECK.match("+442071234567", T0).prefix == "4420"  # type: ignore[union-attr]
    assert DECK.match("+443001234567", T0).prefix == "44"  # type: ignore[union-attr]
    assert DECK.match("+14155550123", T0) is None


def test_a_tariff_applies_only_inside_its_validity_window() -> None:
    old = Tariff(prefix="1", price_per_minute=D("0.01"), valid_to=T0)
    new = Tariff(prefix="1", price_per_minute=D("0.02"), valid_from=T0)
    specific = Tariff(prefix="1415", price_per_minute=D("0.05"), valid_from=T0 + timedelta(days=1))
    deck = _deck(old, new, specific)
    assert deck.match("+14155550123", T0 - timedelta(seconds=1)) is old
    assert deck.match("+14155550123", T0) is new  # valid_to is exclusive, valid_from inclusive
    # a longer prefix that is not yet valid falls back to the shorter one
    assert deck.match("+14155550123", T0 + timedelta(hours=1)) is new
    assert deck.match("+14155550123", T0 + timedelta(days=2)) is specific


@pytest.mark.parametrize(
    ("ms", "first", "nxt", "expected"),
    [
        (0, 60, 60, 0),
        (1, 60, 60, 60),
        (60_000, 60, 60, 60),
        (60_001, 60, 60, 120),
        (61_200, 60, 60, 120),
        (61_200, 30, 6, 66),
        (61_200, 1, 1, 62),
        (29_999, 30, 6, 30),
        (30_001, 30, 6, 36),
    ],
)
def test_billed_seconds_follow_first_then_next_increments(
    ms: int, first: int, nxt: int, expected: int
) -> None:
    assert billed_seconds(ms, first, nxt) == expected


def test_the_worked_example_of_the_docs() -> None:
    # docs/billing.md: +447700900123, answered for 61.2 s on 447 (0.15/min, fee 0.01, 30/6)
    rating = rate_call(DECK, "+447700900123", setup_at=T0, billable_ms=61_200)
    assert rating is not None
    assert (rating.tariff.prefix, rating.billed_seconds, rating.cost) == ("447", 66, D("0.175000"))
    assert rating.currency == "USD" and rating.plan == "default"


def test_the_cost_is_rounded_once_per_call_half_up() -> None:
    # 0.000013/min for 1 s = 0.000000216…: per-second rounding would give 0.000000 every second,
    # a single rounding of 61 s gives 0.000013217 → 0.000013
    tariff = Tariff(prefix="1", price_per_minute=D("0.000013"), first_increment=1, next_increment=1)
    assert call_cost(tariff, 61, answered=True) == D("0.000013")
    half = Tariff(prefix="1", price_per_minute=D("0.000030"), first_increment=1, next_increment=1)
    assert call_cost(half, 1, answered=True) == D("0.000001")  # 0.0000005 exactly: half up


def test_an_unanswered_call_costs_nothing_unless_the_plan_bills_attempts() -> None:
    free = rate_call(DECK, "+447700900123", setup_at=T0, billable_ms=None)
    assert free is not None and (free.billed_seconds, free.cost) == (0, D("0.000000"))
    paying = _deck(*DECK.tariffs, bill_unanswered=True)
    charged = rate_call(paying, "+447700900123", setup_at=T0, billable_ms=None)
    assert charged is not None and (charged.billed_seconds, charged.cost) == (0, D("0.010000"))


def test_no_matching_prefix_or_no_number_leaves_the_call_unrated() -> None:
    assert rate_call(DECK, "+14155550123", setup_at=T0, billable_ms=10_000) is None
    assert rate_call(DECK, None, setup_at=T0, billable_ms=10_000) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"prefix": "4a", "price_per_minute": D("0.01")},
        {"prefix": "44", "price_per_minute": D("-0.01")},
        {"prefix": "44", "price_per_minute": D("0.01"), "first_increment": 0},
        {"prefix": "44", "price_per_minute": D("0.0000001")},
        {"prefix": "44", "price_per_minute": D("0.01"), "valid_from": T0, "valid_to": T0},
    ],
)
def test_an_impossible_tariff_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Tariff(**bad)  # type: ignore[arg-type]


increments = st.sampled_from([(60, 60), (30, 6), (1, 1), (60, 1), (6, 6), (45, 15)])
prices = st.decimals(min_value=0, max_value=100, places=6, allow_nan=False, allow_infinity=False)
durations = st.integers(min_value=0, max_value=48 * 3600 * 1000)


@given(durations, increments)
def test_billed_seconds_are_the_smallest_increment_count_covering_the_time(
    ms: int, inc: tuple[int, int]
) -> None:
    first, nxt = inc
    billed = billed_seconds(ms, first, nxt)
    assert billed * 1000 >= ms  # covers the talk time
    if ms == 0:
        assert billed == 0
    else:
        assert billed >= first and (billed - first) % nxt == 0  # of the form first + k·next
        smaller = billed - nxt if billed > first else 0
        assert smaller * 1000 < ms  # one increment less would not cover it


@given(durations, durations, increments, prices, prices)
def test_cost_is_monotone_in_duration(
    a: int, b: int, inc: tuple[int, int], price: Decimal, fee: Decimal
) -> None:
    tariff = Tariff(
        prefix="1", price_per_minute=price, connect_fee=fee, first_increment=inc[0], next_increment=inc[1]
    )
    short, long = sorted((a, b))
    deck = _deck(tariff)
    r_short = rate_call(deck, "+1", setup_at=T0, billable_ms=short)
    r_long = rate_call(deck, "+1", setup_at=T0, billable_ms=long)
    assert r_short is not None and r_long is not None
    assert r_short.billed_seconds <= r_long.billed_seconds
    assert fee <= r_short.cost <= r_long.cost


@given(st.integers(min_value=0, max_value=10**7), prices, prices)
def test_cost_equals_the_exact_fraction_rounded_once_half_up(
    seconds: int, price: Decimal, fee: Decimal
) -> None:
    tariff = Tariff(prefix="1", price_per_minute=price, connect_fee=fee)
    exact = Fraction(fee) + Fraction(price) * seconds / 60
    micros = int(exact * 10**6 + Fraction(1, 2))  # half up, exact (floor of a positive value)
    expected = Decimal(micros).scaleb(-6).quantize(D("0.000001"), rounding=ROUND_HALF_UP)
    assert call_cost(tariff, seconds, answered=True) == expected


@given(
    st.lists(st.from_regex(r"[1-9][0-9]{0,5}", fullmatch=True), min_size=1, max_size=20, unique=True),
    st.from_regex(r"[1-9][0-9]{1,14}", fullmatch=True),
)
def test_the_match_is_the_longest_deck_prefix_of_the_number(prefixes: list[str], digits: str) -> None:
    deck = _deck(*(Tariff(prefix=p, price_per_minute=D(1)) for p in prefixes))
    found = deck.match("+" + digits, T0)
    candidates = [p for p in prefixes if digits.startswith(p)]
    if not candidates:
        assert found is None
    else:
        assert found is not None and found.prefix == max(candidates, key=len)
