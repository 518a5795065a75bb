"""Rate decks load from CSV and XML, bad files name the spot and change nothing, swaps are atomic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

import switchd.billing._writer as writer_module
from switchd.billing import (
    Rate,
    RateDeck,
    RateDeckError,
    StoreUnavailable,
    Tariff,
    load_decks,
    parse_csv,
    parse_xml,
    read_deck_file,
    store_deck,
)
from switchd.billing._writer import Writer

from .factories import CONFIG_DIR

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
HEADER = "prefix,description,price_per_minute,connect_fee,first_increment,next_increment,currency,valid_from,valid_to"


def test_the_sample_csv_and_xml_decks_describe_the_same_tariffs() -> None:
    from_csv = read_deck_file(CONFIG_DIR / "rates.csv")
    from_xml = read_deck_file(CONFIG_DIR / "rates.xml")
    assert from_csv == from_xml
    assert from_csv.plan == "default" and len(from_csv.tariffs) == 7
    london = from_csv.match("+442071234567", NOW)
    assert london is not None and (london.price_per_minute, london.first_increment) == (Decimal("0.012"), 30)


def test_csv_defaults_fill_the_optional_columns() -> None:
    deck = parse_csv("prefix,price_per_minute\n+33,0.05\n", plan="fr", currency="EUR")
    assert deck.tariffs == (Tariff(prefix="33", price_per_minute=Decimal("0.05"), currency="EUR"),)
    assert (deck.plan, deck.currency) == ("fr", "EUR")


@pytest.mark.parametrize(
    ("body", "where", "problem"),
    [
        (
            f"{HEADER}\n44,UK,0.02,0,60,60,USD,,\n45,DK,zero,0,60,60,USD,,\n",
            "deck.csv:3",
            "price_per_minute 'zero'",
        ),
        (f"# comment\n{HEADER}\n44,UK,0.02,0,60,60,USD,,\n44,UK,0.03,0,60\n", "deck.csv:4", "5 fields"),
        (f"{HEADER}\n4x,UK,0.02,0,60,60,USD,,\n", "deck.csv:2", "prefix '4x'"),
        (f"{HEADER}\n44,UK,0.02,0,0,60,USD,,\n", "deck.csv:2", "first_increment '0'"),
        (f"{HEADER}\n44,UK,0.02,0,60,60,usd,,\n", "deck.csv:2", "currency 'usd'"),
        (f"{HEADER}\n44,UK,0.02,0,60,60,USD,yesterday,\n", "deck.csv:2", "valid_from 'yesterday'"),
        (f"{HEADER}\n44,UK,0.0200001,0,60,60,USD,,\n", "deck.csv:2", "at most 6 decimal places"),
        (
            f"{HEADER}\n44,UK,0.02,0,60,60,USD,,\n44,UK,0.03,0,60,60,USD,2026-01-01,\n",
            "deck.csv:3",
            "overlaps the tariff at deck.csv:2",
        ),
        ("prefix,price,extra\n", "deck.csv:1", "unknown column(s) 'price', 'extra'"),
        ("# only a comment\n", "deck.csv", "no header"),
        (f"{HEADER}\n", "deck.csv", "no rates"),
    ],
)
def test_a_bad_csv_line_is_named_with_its_problem(body: str, where: str, problem: str) -> None:
    with pytest.raises(RateDeckError) as caught:
        parse_csv(body, source="deck.csv")
    assert caught.value.where == where
    assert problem in caught.value.problem


XML_OK = b"""<?xml version="1.0"?>
<rate-plan name="gold" currency="EUR" bill_unanswered="true">
  <rate prefix="33" price_per_minute="0.05" connect_fee="0.01"/>
</rate-plan>
"""


def test_xml_carries_the_plan_name_currency_and_unanswered_policy() -> None:
    deck = parse_xml(XML_OK)
    assert (deck.plan, deck.currency, deck.bill_unanswered) == ("gold", "EUR", True)
    assert deck.tariffs[0].currency == "EUR" and deck.tariffs[0].connect_fee == Decimal("0.01")


@pytest.mark.parametrize(
    ("body", "where", "problem"),
    [
        (
            b'<rate-plan>\n<rate prefix="33"/>\n</rate-plan>',
            "deck.xml:2 <rate prefix='33'>",
            "missing price_per_minute",
        ),
        (
            b'<rate-plan>\n\n<rate prefix="33" price_per_minute="x"/>\n</rate-plan>',
            "deck.xml:3 <rate prefix='33'>",
            "price_per_minute 'x'",
        ),
        (
            b'<rate-plan>\n<rate prefix="33" price_per_minute="1" colour="red"/>\n</rate-plan>',
            "deck.xml:2 <rate prefix='33'>",
            "unknown attribute(s) colour",
        ),
        (b"<rates>\n</rates>", "deck.xml:1 <rates>", "root element"),
        (b"<rate-plan>\n<tariff/>\n</rate-plan>", "deck.xml:2 <tariff>", "only <rate>"),
        (b'<rate-plan bill_unanswered="yes"/>', "deck.xml:1 <rate-plan>", "'yes' is not true or false"),
        (
            b'<rate-plan>\n<rate prefix="33" price_per_minute="1">\n</rate-plan>',
            "deck.xml:3",
            "not well-formed",
        ),
        (b"<rate-plan/>", "deck.xml", "no <rate> elements"),
    ],
)
def test_a_bad_xml_element_is_named_with_its_line(body: bytes, where: str, problem: str) -> None:
    with pytest.raises(RateDeckError) as caught:
        parse_xml(body, source="deck.xml")
    assert caught.value.where == where
    assert problem in caught.value.problem


def test_xml_entities_and_dtds_are_refused() -> None:
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<rate-plan><rate prefix="1" price_per_minute="1" description="&lol2;"/></rate-plan>"""
    with pytest.raises(RateDeckError, match="refused"):
        parse_xml(bomb, source="bomb.xml")


def test_an_unreadable_or_non_utf8_file_is_a_rate_deck_error(tmp_path: Path) -> None:
    with pytest.raises(RateDeckError, match="cannot read"):
        read_deck_file(tmp_path / "missing.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"prefix,price_per_minute\n33,1\n34,1\xe9\n")
    with pytest.raises(RateDeckError, match=r"latin.csv:3: not UTF-8"):
        read_deck_file(latin)


def _deck(plan: str, *prices: str) -> RateDeck:
    return RateDeck(
        plan, tuple(Tariff(prefix=str(40 + n), price_per_minute=Decimal(p)) for n, p in enumerate(prices))
    )


def test_storing_a_deck_replaces_the_plans_tariffs_and_leaves_other_plans(engine: Engine) -> None:
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        store_deck(session, _deck("a", "0.01", "0.02", "0.03"), now=NOW)
        store_deck(session, _deck("b", "0.5"), now=NOW)
    with sessions.begin() as session:
        assert store_deck(session, _deck("a", "0.07"), now=NOW) == 1
    with sessions() as session:
        decks = load_decks(session)
    assert decks == {"a": _deck("a", "0.07"), "b": _deck("b", "0.5")}


@pytest.fixture
def failing_rate_inserts(engine: Engine) -> Iterator[None]:
    def fail(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO rates"):
            raise OperationalError(statement, None, Exception("disk I/O error (injected)"))

    event.listen(engine, "before_cursor_execute", fail)
    yield
    event.remove(engine, "before_cursor_execute", fail)


def test_a_failed_deck_swap_leaves_the_old_deck_whole(engine: Engine, request: pytest.FixtureRequest) -> None:
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        store_deck(session, _deck("a", "0.01", "0.02"), now=NOW)
    request.getfixturevalue("failing_rate_inserts")
    with pytest.raises(OperationalError), sessions.begin() as session:
        store_deck(session, _deck("a", "0.09"), now=NOW)
    with Session(engine) as session:
        assert load_decks(session)["a"] == _deck("a", "0.01", "0.02")
        assert session.scalar(select(func.count()).select_from(Rate)) == 2


def test_a_plan_another_writer_inserted_meanwhile_is_replaced_on_a_second_try(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def losing_first(session: Session, deck: RateDeck, *, now: datetime) -> int:
        calls.append(1)
        if len(calls) == 1:  # the other worker's insert of the same plan won the unique name
            raise IntegrityError("INSERT INTO rate_plans", {}, Exception("UNIQUE constraint failed"))
        return store_deck(session, deck, now=now)

    monkeypatch.setattr(writer_module, "store_deck", losing_first)
    writer = Writer(engine)
    assert writer.replace_deck(_deck("a", "0.07"), NOW) == 1
    assert len(calls) == 2 and writer.decks["a"] == _deck("a", "0.07")
    with sessionmaker(engine)() as session:
        assert load_decks(session) == {"a": _deck("a", "0.07")}


def test_a_plan_that_cannot_be_stored_twice_over_is_refused(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def always(session: Session, deck: RateDeck, *, now: datetime) -> int:
        raise IntegrityError("INSERT INTO rate_plans", {}, Exception("UNIQUE constraint failed"))

    monkeypatch.setattr(writer_module, "store_deck", always)
    with pytest.raises(StoreUnavailable, match="cannot store rate plan 'a'"):
        Writer(engine).replace_deck(_deck("a", "0.07"), NOW)
