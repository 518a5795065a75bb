"""Listing with filters and keyset pages, lookup by Call-ID, and summaries with exact totals."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from switchd.billing import (
    CdrFilter,
    CdrStatus,
    Disposition,
    GroupBy,
    InvalidQuery,
    PageCursor,
    SummaryRow,
    cdr_key,
    cdrs_for_call,
    list_cdrs,
    rebuild_rollups,
    summarize,
)

from .factories import T0, cdr_row, insert_cdrs


def _ids(engine: Engine, where: CdrFilter) -> list[str]:
    with Session(engine) as session:
        return [c.call_id for c in list_cdrs(session, where, limit=1000).cdrs]


@pytest.fixture
def mixed(engine: Engine) -> Engine:
    unanswered = {"answer_at": None, "billable_ms": None, "billed_seconds": 0, "cost": Decimal(0)}
    insert_cdrs(
        engine,
        [
            cdr_row(0),
            cdr_row(1, account="globex", callee="+14155550123", rate_prefix="1415"),
            cdr_row(2, disposition=Disposition.BUSY, sip_code=486, **unanswered),
            cdr_row(3, caller="+442071230000", disposition=Disposition.NO_ANSWER, sip_code=480, **unanswered),
            cdr_row(4, status=CdrStatus.OPEN, disposition=None, end_at=None, **unanswered),
            cdr_row(
                5,
                setup_at=T0 + timedelta(days=1),
                billable_ms=61_200,
                billed_seconds=120,
                cost=Decimal("0.020000"),
            ),
        ],
    )
    return engine


LISTINGS = [
    (CdrFilter(), [0, 1, 2, 3, 4, 5]),
    (CdrFilter(since=T0 + timedelta(seconds=1), until=T0 + timedelta(seconds=4)), [1, 2, 3]),
    (CdrFilter(caller_prefix="+44"), [3]),
    (CdrFilter(caller_prefix="1415"), [0, 1, 2, 4, 5]),
    (CdrFilter(callee_prefix="+1"), [1]),
    (CdrFilter(account="globex"), [1]),
    (CdrFilter(disposition=Disposition.BUSY), [2]),
    (CdrFilter(status=CdrStatus.OPEN), [4]),
    (CdrFilter(account="acme", disposition=Disposition.ANSWERED, since=T0 + timedelta(hours=1)), [5]),
]


def test_listing_returns_exactly_the_cdrs_matching_every_filter(mixed: Engine) -> None:
    # one database for all the filters: a PostgreSQL database per case would cost a second each
    for where, expected in LISTINGS:
        assert _ids(mixed, where) == [f"call-{n}" for n in expected], where


def test_keyset_pages_cover_every_cdr_once_in_order_even_with_equal_setup_times(engine: Engine) -> None:
    insert_cdrs(engine, [cdr_row(n, setup_at=T0 + timedelta(seconds=n // 3)) for n in range(25)])
    seen: list[str] = []
    cursor = None
    with Session(engine) as session:
        while True:
            page = list_cdrs(session, limit=4, after=cursor)
            seen += [c.call_id for c in page.cdrs]
            if page.next is None:
                break
            cursor = PageCursor.decode(page.next.encode())  # as a client would hand it back
            # a CDR inserted behind the cursor does not shift the following pages
            insert_cdrs(engine, [cdr_row(1000 + len(seen), setup_at=T0 - timedelta(days=1))])
    assert seen == [f"call-{n}" for n in range(25)]


def test_newest_first_pages_cover_every_cdr_once_newest_first(engine: Engine) -> None:
    insert_cdrs(engine, [cdr_row(n, setup_at=T0 + timedelta(seconds=n // 3)) for n in range(10)])
    seen: list[str] = []
    cursor = None
    with Session(engine) as session:
        while True:
            page = list_cdrs(session, limit=3, after=cursor, newest=True)
            seen += [c.call_id for c in page.cdrs]
            if page.next is None:
                break
            cursor = PageCursor.decode(page.next.encode())
    assert seen == [f"call-{n}" for n in reversed(range(10))]


def test_listing_filters_on_the_gateway_and_the_call_id(engine: Engine) -> None:
    insert_cdrs(engine, [cdr_row(1, gateway="gw-a"), cdr_row(2, gateway="gw-b"), cdr_row(3, gateway="gw-a")])
    assert _ids(engine, CdrFilter(gateway="gw-a")) == ["call-1", "call-3"]
    assert _ids(engine, CdrFilter(call_id="call-2")) == ["call-2"]
    assert _ids(engine, CdrFilter(gateway="gw-b", call_id="call-1")) == []


def test_the_summary_by_gateway_scans_the_cdrs_and_groups_by_the_last_gateway(engine: Engine) -> None:
    unanswered = {"answer_at": None, "billable_ms": None, "billed_seconds": 0, "cost": Decimal(0),
                  "disposition": Disposition.BUSY, "sip_code": 486}
    insert_cdrs(engine, [cdr_row(1, gateway="gw-a"), cdr_row(2, gateway="gw-a", **unanswered),
                         cdr_row(3, gateway="gw-b"), cdr_row(4, gateway=None, **unanswered)])
    with Session(engine) as session:
        rows = {r.key: (r.calls, r.answered) for r in summarize(session, GroupBy.GATEWAY)}
    assert rows == {"gw-a": (2, 1), "gw-b": (1, 1), None: (1, 0)}


def test_a_cursor_that_is_not_ours_or_a_bad_filter_is_an_invalid_query(engine: Engine) -> None:
    with pytest.raises(InvalidQuery, match="cursor 'garbage'"):
        PageCursor.decode("garbage")
    with Session(engine) as session:
        with pytest.raises(InvalidQuery, match="caller_prefix '44%'"):
            list_cdrs(session, CdrFilter(caller_prefix="44%"))
        with pytest.raises(InvalidQuery, match="limit 0"):
            list_cdrs(session, limit=0)


def test_lookup_by_call_id_returns_every_attempt_of_that_call(engine: Engine) -> None:
    insert_cdrs(
        engine,
        [
            cdr_row(1, call_id="abc@host", key=cdr_key("n1", "abc@host", 1)),
            cdr_row(2, call_id="abc@host", attempt=2, key=cdr_key("n1", "abc@host", 2)),
            cdr_row(3),
        ],
    )
    with Session(engine) as session:
        assert [c.attempt for c in cdrs_for_call(session, "abc@host")] == [1, 2]
        assert cdrs_for_call(session, "nope") == []


@pytest.mark.parametrize("use_rollups", [True, False], ids=["rollups", "scan"])
def test_the_summary_by_disposition_has_exact_calls_asr_acd_minutes_and_cost(
    mixed: Engine, use_rollups: bool
) -> None:
    with Session(mixed) as session:
        rows = {r.key: r for r in summarize(session, GroupBy.DISPOSITION, use_rollups=use_rollups)}
    assert set(rows) == {"ANSWERED", "BUSY", "NO_ANSWER"}  # finished calls: the open one is not billed yet
    answered = rows["ANSWERED"]
    assert (answered.calls, answered.answered, answered.billed_seconds) == (3, 3, 240)
    assert answered.billable_seconds == Decimal("181.2")
    assert answered.acd == pytest.approx(60.4)
    assert answered.billed_minutes == 4
    assert answered.cost == Decimal("0.040000")
    assert (rows["BUSY"].calls, rows["BUSY"].answered, rows["BUSY"].asr) == (1, 0, 0.0)


@pytest.mark.parametrize("use_rollups", [True, False], ids=["rollups", "scan"])
def test_the_summary_by_day_account_and_destination_groups_as_named(mixed: Engine, use_rollups: bool) -> None:
    with Session(mixed) as session:

        def summary(by: GroupBy, where: CdrFilter | None = None) -> list[SummaryRow]:
            return summarize(session, by, where or CdrFilter(), use_rollups=use_rollups)

        by_day = {r.key: (r.calls, r.answered, r.cost) for r in summary(GroupBy.DAY)}
        by_account = {r.key: r.calls for r in summary(GroupBy.ACCOUNT)}
        by_dest = {r.key: r.asr for r in summary(GroupBy.DESTINATION)}
        filtered = summary(GroupBy.DAY, CdrFilter(account="globex"))
        day_two = summary(GroupBy.DAY, CdrFilter(since=T0.replace(hour=0) + timedelta(days=1)))
        with_open = summary(GroupBy.DISPOSITION, CdrFilter(status=CdrStatus.OPEN))
    assert by_day == {"2026-11-25": (4, 2, Decimal("0.020000")), "2026-11-26": (1, 1, Decimal("0.020000"))}
    assert by_account == {"acme": 4, "globex": 1}
    assert by_dest == {"44": pytest.approx(2 / 4), "1415": 1.0}
    assert [(r.key, r.calls) for r in filtered] == [("2026-11-25", 1)]
    assert [(r.key, r.calls) for r in day_two] == [("2026-11-26", 1)]
    assert [(r.key, r.calls) for r in with_open] == [(None, 1)]


def test_the_day_of_a_summary_is_the_utc_day(engine: Engine) -> None:
    late = T0.replace(hour=23, minute=59, second=59, microsecond=999_000)
    insert_cdrs(engine, [cdr_row(1, setup_at=late), cdr_row(2, setup_at=late + timedelta(milliseconds=1))])
    with Session(engine) as session:
        assert [r.key for r in summarize(session, GroupBy.DAY)] == ["2026-11-25", "2026-11-26"]


def test_rollups_and_a_full_scan_give_the_same_summaries(engine: Engine) -> None:
    dispositions = list(Disposition)
    rows = []
    for n in range(300):
        disposition = dispositions[n % len(dispositions)]
        answered = disposition is Disposition.ANSWERED
        rows.append(
            cdr_row(
                n,
                setup_at=T0 + timedelta(hours=n * 7),
                account=f"a{n % 4}" if n % 5 else None,
                rate_prefix=["44", "4420", None][n % 3],
                currency=None if n % 3 == 2 else "USD",
                disposition=disposition,
                billable_ms=n * 997 if answered else None,
                billed_seconds=n if answered else 0,
                cost=Decimal(n).scaleb(-4) if n % 3 != 2 else None,
                status=CdrStatus.OPEN if n % 11 == 0 else CdrStatus.CLOSED,
            )
        )
    insert_cdrs(engine, rows)
    filters = [
        CdrFilter(),
        CdrFilter(account="a1"),
        CdrFilter(disposition=Disposition.ANSWERED),
        CdrFilter(
            since=T0.replace(hour=0) + timedelta(days=5), until=T0.replace(hour=0) + timedelta(days=40)
        ),
    ]
    with Session(engine) as session:
        for where in filters:
            for by in GroupBy:
                assert summarize(session, by, where) == summarize(session, by, where, use_rollups=False), (
                    by,
                    where,
                )
        # rebuilding gives the rollups the store keeps: the same again
        rebuild_rollups(session)
        assert summarize(session, GroupBy.DAY) == summarize(session, GroupBy.DAY, use_rollups=False)
