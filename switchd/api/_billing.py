"""Billing endpoints: GET /cdrs, /cdrs/{call_id}, /billing/summary and POST /rates.

Queries run in the API's database threads (`Database.run`) with switchd.billing's own query
functions, so the API lists, pages and sums exactly as `switchd cdr` does; a CDR is the record
of the JSON export (`cdr_json`). A posted deck is parsed there too (a 10 MiB deck is real work)
with the deck parsers of the daemon's own rate loading, then handed to the billing store, which
stores it and rates calls with it from then on.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingError,
    CdrFilter,
    CdrStatus,
    Disposition,
    GroupBy,
    InvalidQuery,
    PageCursor,
    RateDeck,
    RateDeckError,
    SummaryRow,
    cdr_json,
    cdrs_for_call,
    list_cdrs,
    parse_csv,
    parse_xml,
    set_rates,
    summarize,
)

from ._dispatch import Answer, ApiRequest, Json, Query
from ._errors import ApiError, BadRequest, NotFound, Unavailable, Unprocessable
from ._json import media_type
from ._state import ApiState

MAX_PAGE = 1000
CSV_TYPES = ("text/csv",)
XML_TYPES = ("application/xml", "text/xml")


def _filter(query: Query) -> CdrFilter:
    return CdrFilter(
        since=query.time("since"), until=query.time("until"),
        caller_prefix=query.text("caller"), callee_prefix=query.text("callee"),
        account=query.text("account"), node=query.text("node"), gateway=query.text("gateway"),
        call_id=query.text("call_id"),
        status=query.choice("status", CdrStatus), disposition=query.choice("disposition", Disposition),
    )


def _page(engine: Engine, where: CdrFilter, limit: int, after: PageCursor | None,
          newest: bool) -> tuple[list[dict[str, object]], str | None]:
    with Session(engine) as session:
        page = list_cdrs(session, where, limit=limit, after=after, newest=newest)
        return [cdr_json(cdr) for cdr in page.cdrs], None if page.next is None else page.next.encode()


async def cdrs(state: ApiState, request: ApiRequest) -> Answer:
    query = request.query
    where = _filter(query)
    limit = query.integer("limit", 100, low=1, high=MAX_PAGE)
    order = query.text("order", "newest")
    if order not in ("newest", "oldest"):
        raise BadRequest(f"order={order!r} is not newest or oldest")
    cursor = query.text("cursor")
    query.done()
    try:
        after = None if cursor is None else PageCursor.decode(cursor)
    except InvalidQuery as exc:
        raise BadRequest(str(exc)) from None
    rows, after_token = await state.db.run(partial(_page, where=where, limit=limit, after=after,
                                                   newest=order == "newest"))
    return Json({"cdrs": rows, "next": after_token})


def _for_call(engine: Engine, call_id: str) -> list[dict[str, object]]:
    with Session(engine) as session:
        return [cdr_json(cdr) for cdr in cdrs_for_call(session, call_id)]


async def cdrs_of_call(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    call_id = request.params[0]
    rows = await state.db.run(partial(_for_call, call_id=call_id))
    if not rows:
        raise NotFound(f"no CDR of call {call_id!r}")
    return Json({"cdrs": rows})


def _row(row: SummaryRow) -> dict[str, Any]:
    return {"key": row.key, "calls": row.calls, "answered": row.answered, "asr": round(row.asr, 4),
            "acd": round(row.acd, 3), "minutes": round(float(row.billed_minutes), 4), "billed_seconds": row.billed_seconds,
            "cost": format(row.cost, "f"), "currency": row.currency}


def _summary(engine: Engine, by: GroupBy, where: CdrFilter) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return [_row(row) for row in summarize(session, by, where)]


async def summary(state: ApiState, request: ApiRequest) -> Answer:
    query = request.query
    by = query.choice("by", GroupBy, GroupBy.DAY)
    assert by is not None
    where = CdrFilter(since=query.time("since"), until=query.time("until"), account=query.text("account"),
                      node=query.text("node"), gateway=query.text("gateway"),
                      disposition=query.choice("disposition", Disposition))
    query.done()
    rows = await state.db.run(partial(_summary, by=by, where=where))
    return Json({"by": by.value, "rows": rows})


def _parse_deck(body: bytes, kind: str, plan: str, currency: str) -> RateDeck:
    if kind == "xml":
        return parse_xml(body, source="POST /rates")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise RateDeckError(f"POST /rates:{line}", "not UTF-8 text") from None
    return parse_csv(text, source="POST /rates", plan=plan, currency=currency)


async def rates(state: ApiState, request: ApiRequest) -> Answer:
    query = request.query
    plan, currency = query.text("plan"), query.text("currency")
    query.done()
    content_type = media_type(request.content_type)
    if content_type in CSV_TYPES:
        kind = "csv"
    elif content_type in XML_TYPES:
        kind = "xml"
        if plan is not None or currency is not None:
            raise BadRequest("an XML deck names its own plan and currency: leave out plan= and currency=")
    else:
        raise ApiError(415, "unsupported_media_type",
                       f"send the deck as text/csv or application/xml, not {request.content_type or 'nothing'}")
    try:
        deck = await state.db.compute(partial(_parse_deck, request.body, kind, plan or state.view.default_plan,
                                              currency or state.view.currency))
        tariffs = await set_rates(deck)
    except RateDeckError as exc:
        raise Unprocessable(str(exc)) from None
    except BillingError as exc:  # StoreUnavailable: the old deck stays in force
        raise Unavailable(f"the billing store could not take the deck: {exc}") from None
    return Json({"plan": deck.plan, "currency": deck.currency, "tariffs": tariffs})
