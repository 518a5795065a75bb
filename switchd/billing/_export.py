"""Streaming export of CDRs to CSV, JSON lines and XML, with the standard library only.

Rows come from a server-side cursor (`stream_results` + `yield_per`: a named cursor on
PostgreSQL, SQLite steps its cursor anyway), are formatted one at a time and written out, so
exporting a million CDRs holds one batch in memory, never the result set.

* CSV: a header row with the field names, then one row per CDR; empty cell for NULL.
* JSON lines: one object per line; NULL is null, money a string ("0.175000": exact), times
  ISO 8601 in UTC with milliseconds.
* XML: `<cdrs>` with one `<cdr>` per record and one child element per non-NULL field; text is
  escaped by xml.sax.saxutils.escape (&, <, >), and characters XML 1.0 cannot carry (control
  characters, lone surrogates) become U+FFFD. The document is UTF-8.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import TextIO
from xml.sax.saxutils import escape

from sqlalchemy import Engine, select

from ._models import Cdr
from ._queries import CdrFilter, conditions, order

_EVERY_CDR = CdrFilter()
FIELDS: tuple[str, ...] = tuple(column.key for column in Cdr.__table__.columns)

# XML 1.0 §2.2 Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ExportFormat(StrEnum):
    """The formats `export_cdrs` writes."""

    CSV = "csv"
    JSONL = "jsonl"
    XML = "xml"


def _text(value: object) -> str | None:
    """A field value as export text; None stays None."""
    match value:
        case None:
            return None
        case bool():
            return "true" if value else "false"
        case datetime():
            return value.isoformat(timespec="milliseconds")
        case Enum():
            return str(value.value)
        case Decimal():
            return format(value, "f")
        case _:
            return str(value)


def iter_cdr_rows(
    engine: Engine, where: CdrFilter = _EVERY_CDR, *, batch: int = 1000, newest: bool = False
) -> Iterator[dict[str, object]]:
    """The CDRs in `where` as dicts of FIELDS, in (setup_at, id) order (`newest`: reversed),
    streamed in `batch`es."""
    query = select(*Cdr.__table__.columns).where(*conditions(where)).order_by(*order(newest=newest))
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        for row in result.mappings():
            yield dict(row)


def _write_csv(rows: Iterator[dict[str, object]], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    count = 0
    for row in rows:
        writer.writerow(["" if (text := _text(row[f])) is None else text for f in FIELDS])
        count += 1
    return count


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int) and not isinstance(value, Enum):
        return value
    return _text(value)


def cdr_json(row: Mapping[str, object] | Cdr) -> dict[str, object]:
    """One CDR (a row of `iter_cdr_rows`, or a Cdr) as the JSON export writes it: FIELDS in order,
    NULL as None, money as a string, times ISO 8601 UTC with milliseconds."""
    if isinstance(row, Cdr):
        return {f: _json_value(getattr(row, f)) for f in FIELDS}
    return {f: _json_value(row[f]) for f in FIELDS}


def _write_jsonl(rows: Iterator[dict[str, object]], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(cdr_json(row), ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        count += 1
    return count


def _write_xml(rows: Iterator[dict[str, object]], out: TextIO) -> int:
    out.write('<?xml version="1.0" encoding="utf-8"?>\n<cdrs>\n')
    count = 0
    for row in rows:
        parts = ["<cdr>"]
        for field in FIELDS:  # field names are fixed identifiers, safe as element names
            text = _text(row[field])
            if text is not None:
                parts.append(f"<{field}>{escape(_NOT_XML_CHAR.sub(chr(0xFFFD), text))}</{field}>")
        parts.append("</cdr>\n")
        out.write("".join(parts))
        count += 1
    out.write("</cdrs>\n")
    return count


def export_cdrs(
    engine: Engine,
    out: TextIO,
    fmt: ExportFormat,
    where: CdrFilter = _EVERY_CDR,
    *,
    batch: int = 1000,
    newest: bool = False,
) -> int:
    """Write the CDRs in `where` to `out` as `fmt`, oldest first (`newest`: newest first), streaming;
    returns how many were written."""
    rows = iter_cdr_rows(engine, where, batch=batch, newest=newest)
    match fmt:
        case ExportFormat.CSV:
            return _write_csv(rows, out)
        case ExportFormat.JSONL:
            return _write_jsonl(rows, out)
        case ExportFormat.XML:
            return _write_xml(rows, out)
