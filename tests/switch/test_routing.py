"""The routing table: longest prefix, digit rules, priority then weighted-random order."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.switch import Candidate, Gateway, Route, RouteTable, Target, order_by_priority_weight

GW_A = Gateway(name="a", host="127.0.0.1", port=5071, rate_plan="carrier-a")
GW_B = Gateway(name="b", host="127.0.0.1", port=5072)
GW_C = Gateway(name="c", host="127.0.0.1", port=5073)


def route(prefix: str, *targets: Target, id: str | None = None, strip: int = 0, prepend: str = "") -> Route:
    return Route(id=id or prefix or "default", prefix=prefix, targets=targets, strip=strip, prepend=prepend)


def test_the_longest_matching_prefix_wins() -> None:
    table = RouteTable([
        route("", Target(gateway=GW_C)),
        route("44", Target(gateway=GW_B)),
        route("4420", Target(gateway=GW_A)),
    ])
    assert [c.gateway.name for c in table.candidates("442071234567")] == ["a"]
    assert [c.gateway.name for c in table.candidates("441612345678")] == ["b"]
    assert [c.gateway.name for c in table.candidates("33123456789")] == ["c"]


def test_a_number_no_prefix_matches_has_no_candidates() -> None:
    table = RouteTable([route("44", Target(gateway=GW_A))])
    assert table.match("33123") == ()
    assert table.candidates("33123") == []


def test_a_prefix_longer_than_the_number_does_not_match_it() -> None:
    table = RouteTable([route("4420", Target(gateway=GW_A)), route("4", Target(gateway=GW_B))])
    assert [r.id for r in table.match("442")] == ["4"]


def test_routes_sharing_the_longest_prefix_are_all_candidates_with_their_own_digit_rules() -> None:
    table = RouteTable([
        route("44", Target(gateway=GW_A), id="via-a", strip=2, prepend="0"),
        route("44", Target(gateway=GW_B), id="via-b", prepend="+"),
    ])
    got = {(c.route_id, c.gateway.name, c.number, c.prefix) for c in table.candidates("442071234567")}
    assert got == {("via-a", "a", "02071234567", "44"), ("via-b", "b", "+442071234567", "44")}


def test_strip_removes_leading_digits_before_prepend_adds_its_own() -> None:
    r = route("00", Target(gateway=GW_A), strip=2, prepend="+")
    assert r.rewrite("0044123") == "+44123"
    assert route("1", Target(gateway=GW_A), strip=0, prepend="9").rewrite("1555") == "91555"
    assert route("1", Target(gateway=GW_A), strip=3).rewrite("1555") == "5"


def test_candidates_carry_the_route_id_and_prefix_for_the_cdr() -> None:
    table = RouteTable([route("1", Target(gateway=GW_A, priority=2, weight=7), id="us")])
    assert table.candidates("1555") == [
        Candidate(gateway=GW_A, number="1555", route_id="us", prefix="1", priority=2, weight=7)
    ]


def test_lower_priority_comes_first_whatever_the_weights() -> None:
    table = RouteTable([route("1", Target(gateway=GW_A, priority=2, weight=1000),
                              Target(gateway=GW_B, priority=1, weight=1),
                              Target(gateway=GW_C, priority=3, weight=1))])
    for seed in range(50):
        ordered = order_by_priority_weight(table.candidates("1555"), random.Random(seed))
        assert [c.gateway.name for c in ordered] == ["b", "a", "c"]


def test_weights_share_first_place_in_proportion_over_many_draws() -> None:
    table = RouteTable([route("1", Target(gateway=GW_A, weight=3), Target(gateway=GW_B, weight=1))])
    rng = random.Random(20261125)
    draws = 20_000
    first = Counter(order_by_priority_weight(table.candidates("1555"), rng)[0].gateway.name for _ in range(draws))
    # 3:1 → 75 %; the binomial standard deviation is ~0.3 %, so 1 % is > 3 sigma either side.
    assert abs(first["a"] / draws - 0.75) < 0.01
    assert first["a"] + first["b"] == draws


def test_the_same_seed_gives_the_same_order() -> None:
    table = RouteTable([route("1", *(Target(gateway=Gateway(name=f"g{i}", host="h", port=i + 1))
                                     for i in range(8)))])
    one = order_by_priority_weight(table.candidates("1"), random.Random(7))
    two = order_by_priority_weight(table.candidates("1"), random.Random(7))
    assert one == two


def test_a_zero_weight_gateway_comes_after_every_weighted_one_of_its_priority() -> None:
    table = RouteTable([route("1", Target(gateway=GW_A, weight=0), Target(gateway=GW_B, weight=1),
                              Target(gateway=GW_C, weight=5))])
    for seed in range(50):
        ordered = order_by_priority_weight(table.candidates("1"), random.Random(seed))
        assert ordered[-1].gateway.name == "a"


def test_duplicate_route_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate route ids: x"):
        RouteTable([route("1", Target(gateway=GW_A), id="x"), route("2", Target(gateway=GW_A), id="x")])


def test_a_route_without_gateways_or_with_negative_strip_is_refused() -> None:
    with pytest.raises(ValueError, match="no gateways"):
        route("1")
    with pytest.raises(ValueError, match="strip must be >= 0"):
        route("1", Target(gateway=GW_A), strip=-1)


def test_the_table_lists_each_gateway_it_uses_once() -> None:
    table = RouteTable([route("1", Target(gateway=GW_A), Target(gateway=GW_B)),
                        route("2", Target(gateway=GW_B))])
    assert table.gateways == (GW_A, GW_B)
    assert len(table) == 2


@given(
    prefixes=st.lists(st.text("0123456789", max_size=5), min_size=1, max_size=12, unique=True),
    number=st.text("0123456789", max_size=10),
)
def test_match_returns_exactly_the_longest_prefix_of_the_number(prefixes: list[str], number: str) -> None:
    table = RouteTable([route(p, Target(gateway=GW_A), id=f"r{i}") for i, p in enumerate(prefixes)])
    matching = [p for p in prefixes if number.startswith(p)]
    got = table.match(number)
    if not matching:
        assert got == ()
    else:
        assert [r.prefix for r in got] == [max(matching, key=len)]


@given(
    weights=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=10),
    seed=st.integers(0, 2**32),
)
def test_ordering_is_a_permutation_sorted_by_priority(weights: list[tuple[int, int]], seed: int) -> None:
    targets = [Target(gateway=Gateway(name=f"g{i}", host="h", port=1), priority=p, weight=w)
               for i, (p, w) in enumerate(weights)]
    candidates = RouteTable([route("", *targets)]).candidates("5")
    ordered = order_by_priority_weight(candidates, random.Random(seed))
    assert sorted(ordered, key=lambda c: c.gateway.name) == sorted(candidates, key=lambda c: c.gateway.name)
    assert [c.priority for c in ordered] == sorted(c.priority for c in ordered)


# --- a number in international form: '+' then digits ----------------------------------------------

PLUS_TABLE = RouteTable([
    route("", Target(gateway=GW_C)),
    route("44", Target(gateway=GW_A), id="uk", strip=2, prepend="0"),
    route("+1", Target(gateway=GW_B), id="nanp-plus"),
    route("1", Target(gateway=GW_C), id="nanp"),
    route("1415", Target(gateway=GW_A), id="sf"),
])


@pytest.mark.parametrize(("number", "route_id", "sent"), [
    ("+442079460000", "uk", "02079460000"),  # a route of digits takes the '+' form, rewrites its digits
    ("442079460000", "uk", "02079460000"),  # exactly as it takes the digits form
    ("+12125550100", "nanp-plus", "+12125550100"),  # '+1' and '1' are as long: the '+' route wins
    ("12125550100", "nanp", "12125550100"),  # a '+' route never takes the digits form
    ("+14155550199", "sf", "14155550199"),  # a longer route of digits beats a '+' route
    ("+33123456789", "default", "+33123456789"),  # the default route sends the number as dialled
])
def test_a_plus_number_is_routed_as_dialled_and_by_its_digits(number: str, route_id: str, sent: str) -> None:
    [candidate] = PLUS_TABLE.candidates(number)
    assert (candidate.route_id, candidate.number) == (route_id, sent)
    assert [r.id for r in PLUS_TABLE.match(number)] == [route_id]


def test_a_plus_number_with_no_route_has_no_candidates() -> None:
    assert RouteTable([route("44", Target(gateway=GW_A))]).candidates("+33123") == []
