"""Rate decks: parsing CSV and XML files, and replacing a plan's deck in one transaction.

A file is parsed and checked completely before the database is touched, so a bad file changes
nothing; RateDeckError names the file and the line (CSV) or the line and element (XML). Storing
a deck deletes the plan's old tariffs and inserts the new ones in the caller's transaction: other
readers see the old deck or the new one, never a mix.

CSV (header required; `#` lines are comments; empty optional cells take the default):

    prefix,description,price_per_minute,connect_fee,first_increment,next_increment,currency,valid_from,valid_to
    44,United Kingdom,0.020000,0,60,60,USD,,

XML (one <rate> per tariff, the same names as attributes):

    <rate-plan name="default" currency="USD" bill_unanswered="false">
      <rate prefix="44" description="United Kingdom" price_per_minute="0.02"/>
    </rate-plan>

Required: `prefix`, `price_per_minute`. Defaults: connect_fee 0, increments 60/60, currency the
plan's, validity open. Times are ISO 8601; without an offset they are UTC.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from xml.sax import SAXException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl, Locator

import defusedxml.sax
from defusedxml import DefusedXmlException
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from ._errors import RateDeckError
from ._models import Rate, RatePlan
from ._rating import RateDeck, Tariff
from ._types import to_money

COLUMNS = (
    "prefix",
    "description",
    "price_per_minute",
    "connect_fee",
    "first_increment",
    "next_increment",
    "currency",
    "valid_from",
    "valid_to",
)
REQUIRED = frozenset({"prefix", "price_per_minute"})
_CURRENCY = re.compile(r"[A-Z]{3}")
_PLAN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _decimal(name: str, text: str) -> Decimal:
    try:
        return to_money(text.strip() or "0")
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{name} {text!r} is not an amount with at most 6 decimal places") from exc


def _increment(name: str, text: str) -> int:
    if not text.strip():
        return 60
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{name} {text!r} is not a whole number of seconds ≥ 1")
    return int(text)


def _time(name: str, text: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{name} {text!r} is not an ISO 8601 time") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tariff(fields: Mapping[str, str], currency: str) -> Tariff:
    """A Tariff from one row's named text fields; ValueError says which field is wrong."""
    missing = sorted(n for n in REQUIRED if not fields.get(n, "").strip())
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    prefix = fields["prefix"].strip().removeprefix("+")
    if not prefix.isascii() or not prefix.isdigit() or len(prefix) > 15:
        raise ValueError(f"prefix {fields['prefix']!r} is not 1 to 15 digits (optionally after '+')")
    row_currency = fields.get("currency", "").strip() or currency
    if not _CURRENCY.fullmatch(row_currency):
        raise ValueError(f"currency {row_currency!r} is not a 3-letter ISO 4217 code")
    return Tariff(
        prefix=prefix,
        description=fields.get("description", "").strip(),
        price_per_minute=_decimal("price_per_minute", fields["price_per_minute"]),
        connect_fee=_decimal("connect_fee", fields.get("connect_fee", "")),
        first_increment=_increment("first_increment", fields.get("first_increment", "")),
        next_increment=_increment("next_increment", fields.get("next_increment", "")),
        currency=row_currency,
        valid_from=_time("valid_from", fields.get("valid_from", "")),
        valid_to=_time("valid_to", fields.get("valid_to", "")),
    )


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def _check_overlaps(rows: Iterable[tuple[str, Tariff]]) -> None:
    """Two tariffs for one prefix must not be valid at the same time (rating would be ambiguous)."""
    seen: dict[str, list[tuple[str, Tariff]]] = {}
    for where, tariff in rows:
        first, last = tariff.valid_from or _EARLIEST, tariff.valid_to or _LATEST
        for other_where, other in seen.get(tariff.prefix, []):
            # half-open intervals [from, to) meet iff each starts before the other ends
            if first < (other.valid_to or _LATEST) and (other.valid_from or _EARLIEST) < last:
                raise RateDeckError(where, f"prefix {tariff.prefix} overlaps the tariff at {other_where}")
        seen.setdefault(tariff.prefix, []).append((where, tariff))


def _plan_options(name: str, currency: str, where: str) -> None:
    if not _PLAN_NAME.fullmatch(name):
        raise RateDeckError(where, f"plan name {name!r} is not 1-64 letters, digits, '_', '.', '-'")
    if not _CURRENCY.fullmatch(currency):
        raise RateDeckError(where, f"currency {currency!r} is not a 3-letter ISO 4217 code")


def parse_csv(
    text: str,
    *,
    source: str = "<csv>",
    plan: str = "default",
    currency: str = "USD",
    bill_unanswered: bool = False,
) -> RateDeck:
    """The deck in CSV `text` (format in the module docstring); RateDeckError names `source:line`."""
    _plan_options(plan, currency, source)
    lines = [
        (n, line) for n, line in enumerate(text.splitlines(), start=1) if not line.lstrip().startswith("#")
    ]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines:
        raise RateDeckError(source, "no header line and no rates")
    header_no, header_line = lines[0]
    header = [h.strip() for h in next(csv.reader([header_line]))]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise RateDeckError(f"{source}:{header_no}", f"unknown column(s) {', '.join(map(repr, unknown))}")
    if not REQUIRED <= set(header):
        raise RateDeckError(f"{source}:{header_no}", f"header must name {', '.join(sorted(REQUIRED))}")
    rows: list[tuple[str, Tariff]] = []
    for number, line in lines[1:]:
        where = f"{source}:{number}"
        try:
            cells = next(csv.reader(io.StringIO(line)))
        except csv.Error as exc:
            raise RateDeckError(where, str(exc)) from None
        if len(cells) != len(header):
            raise RateDeckError(where, f"{len(cells)} fields, the header has {len(header)}")
        try:
            rows.append((where, _tariff(dict(zip(header, cells, strict=True)), currency)))
        except ValueError as exc:
            raise RateDeckError(where, str(exc)) from None
    if not rows:
        raise RateDeckError(source, "no rates")
    _check_overlaps(rows)
    return RateDeck(plan, tuple(t for _, t in rows), currency=currency, bill_unanswered=bill_unanswered)


class _DeckHandler(ContentHandler):
    """SAX handler for <rate-plan><rate …/>…</rate-plan>, keeping line numbers for errors."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.locator: Locator | None = None
        self.plan: dict[str, str] | None = None
        self.rows: list[tuple[str, Tariff]] = []
        self.depth = 0

    def setDocumentLocator(self, locator: Locator) -> None:
        self.locator = locator

    def _where(self, element: str, attrs: Mapping[str, str] | None = None) -> str:
        line = self.locator.getLineNumber() if self.locator is not None else 0
        shown = "".join(f" {k}={v!r}" for k, v in (attrs or {}).items() if k == "prefix")
        return f"{self.source}:{line} <{element}{shown}>"

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        values = {k: attrs[k] for k in attrs.getNames()}
        self.depth += 1
        if self.depth == 1:
            if name != "rate-plan":
                raise RateDeckError(self._where(name), "the root element must be <rate-plan>")
            allowed = {"name", "currency", "bill_unanswered"}
            extra = sorted(set(values) - allowed)
            if extra:
                raise RateDeckError(self._where(name), f"unknown attribute(s) {', '.join(extra)}")
            flag = values.get("bill_unanswered", "false")
            if flag not in {"true", "false"}:
                raise RateDeckError(self._where(name), f"bill_unanswered {flag!r} is not true or false")
            values.setdefault("name", "default")
            values.setdefault("currency", "USD")
            _plan_options(values["name"], values["currency"], self._where(name))
            self.plan = values
            return
        where = self._where(name, values)
        if self.depth > 2 or name != "rate":
            raise RateDeckError(where, "only <rate> elements may appear inside <rate-plan>")
        extra = sorted(set(values) - set(COLUMNS))
        if extra:
            raise RateDeckError(where, f"unknown attribute(s) {', '.join(extra)}")
        assert self.plan is not None
        try:
            self.rows.append((where, _tariff(values, self.plan["currency"])))
        except ValueError as exc:
            raise RateDeckError(where, str(exc)) from None

    def endElement(self, name: str) -> None:
        self.depth -= 1

    def characters(self, content: str) -> None:
        if content.strip():
            raise RateDeckError(self._where("text"), f"unexpected text {content.strip()[:40]!r}")


def parse_xml(data: bytes, *, source: str = "<xml>") -> RateDeck:
    """The deck in XML `data` (format in the module docstring), parsed with defusedxml.

    RateDeckError names `source:line <element prefix=…>`; DTDs and entities are refused.
    """
    handler = _DeckHandler(source)
    try:
        defusedxml.sax.parseString(data, handler, forbid_dtd=True)
    except SAXException as exc:
        line = getattr(exc, "getLineNumber", lambda: "?")()
        raise RateDeckError(f"{source}:{line}", f"not well-formed XML: {exc.getMessage()}") from None
    except DefusedXmlException as exc:
        raise RateDeckError(source, f"refused: {exc}") from None
    if handler.plan is None:
        raise RateDeckError(source, "no <rate-plan> element")
    if not handler.rows:
        raise RateDeckError(source, "no <rate> elements")
    _check_overlaps(handler.rows)
    return RateDeck(
        handler.plan["name"],
        tuple(t for _, t in handler.rows),
        currency=handler.plan["currency"],
        bill_unanswered=handler.plan.get("bill_unanswered") == "true",
    )


def read_deck_file(path: Path, *, plan: str = "default", currency: str = "USD") -> RateDeck:
    """The deck in `path`: `.xml` as XML (which names its own plan), anything else as CSV.

    `plan` and `currency` apply to CSV only. Raises RateDeckError (also for an unreadable file).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RateDeckError(str(path), f"cannot read: {exc.strerror}") from None
    if path.suffix.lower() == ".xml":
        return parse_xml(data, source=str(path))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RateDeckError(f"{path}:{line}", "not UTF-8 text") from None
    return parse_csv(text, source=str(path), plan=plan, currency=currency)


def store_deck(session: Session, deck: RateDeck, *, now: datetime) -> int:
    """Replace the plan's deck with `deck` in `session`'s transaction; returns the tariff count.

    The caller commits (`with sessions.begin() as session:`), which makes the swap atomic.
    """
    plan = session.scalar(select(RatePlan).where(RatePlan.name == deck.plan))
    if plan is None:
        plan = RatePlan(
            name=deck.plan, currency=deck.currency, bill_unanswered=deck.bill_unanswered, loaded_at=now
        )
        session.add(plan)
        session.flush()
    else:
        plan.currency = deck.currency
        plan.bill_unanswered = deck.bill_unanswered
        plan.loaded_at = now
        session.execute(delete(Rate).where(Rate.plan_id == plan.id))
    session.execute(
        insert(Rate),
        [
            {
                "plan_id": plan.id,
                "prefix": t.prefix,
                "description": t.description,
                "price_per_minute": t.price_per_minute,
                "connect_fee": t.connect_fee,
                "first_increment": t.first_increment,
                "next_increment": t.next_increment,
                "currency": t.currency,
                "valid_from": t.valid_from,
                "valid_to": t.valid_to,
            }
            for t in deck.tariffs
        ],
    )
    return len(deck.tariffs)


def load_decks(session: Session) -> dict[str, RateDeck]:
    """Every plan's deck as stored, by plan name."""
    decks: dict[str, RateDeck] = {}
    for plan in session.scalars(select(RatePlan)):
        tariffs = session.scalars(select(Rate).where(Rate.plan_id == plan.id).order_by(Rate.prefix, Rate.id))
        decks[plan.name] = RateDeck(
            plan.name,
            tuple(
                Tariff(
                    prefix=r.prefix,
                    description=r.description,
                    price_per_minute=r.price_per_minute,
                    connect_fee=r.connect_fee,
                    first_increment=r.first_increment,
                    next_increment=r.next_increment,
                    currency=r.currency,
                    valid_from=r.valid_from,
                    valid_to=r.valid_to,
                )
                for r in tariffs
            ),
            currency=plan.currency,
            bill_unanswered=plan.bill_unanswered,
        )
    return decks
