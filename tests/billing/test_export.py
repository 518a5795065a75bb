"""Exports in CSV, JSON lines and XML carry every field, escape right, and stream."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from decimal import Decimal
from xml.etree import ElementTree

import defusedxml.ElementTree
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from switchd.billing import CDR_FIELDS, CdrFilter, ExportFormat, cdr_json, cdrs_for_call, export_cdrs

from .factories import cdr_row, insert_cdrs

NASTY = "Busy <here> & \"there\" 'now'\x01 ünïcode"


def _export(engine: Engine, fmt: ExportFormat, where: CdrFilter | None = None) -> tuple[int, str]:
    out = io.StringIO()
    count = export_cdrs(engine, out, fmt, where or CdrFilter())
    return count, out.getvalue()


def test_csv_export_has_a_header_and_one_row_per_cdr_with_exact_values(engine: Engine) -> None:
    insert_cdrs(engine, [cdr_row(1, sip_reason=NASTY), cdr_row(2, account=None)])
    count, text = _export(engine, ExportFormat.CSV)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert count == 2 and len(rows) == 2
    assert tuple(rows[0]) == CDR_FIELDS
    assert rows[0]["sip_reason"] == NASTY
    assert rows[0]["cost"] == "0.010000" and rows[0]["setup_at"] == "2026-11-25T09:00:01.000+00:00"
    assert rows[0]["disposition"] == "ANSWERED" and rows[0]["rated"] == "true"
    assert rows[1]["account"] == ""


def test_json_lines_export_is_one_object_per_line_with_money_as_exact_strings(engine: Engine) -> None:
    insert_cdrs(engine, [cdr_row(1, sip_reason=NASTY, cost=Decimal("0.175000")), cdr_row(2, account=None)])
    count, text = _export(engine, ExportFormat.JSONL)
    records = [json.loads(line) for line in text.splitlines()]
    assert count == 2 and len(records) == 2
    assert records[0]["cost"] == "0.175000" and records[0]["sip_reason"] == NASTY
    assert records[0]["billed_seconds"] == 60 and records[0]["rated"] is True
    assert records[1]["account"] is None
    assert list(records[0]) == list(CDR_FIELDS)


def test_one_cdr_as_json_is_the_record_the_json_export_writes(engine: Engine) -> None:
    insert_cdrs(engine, [cdr_row(1, sip_reason=NASTY, cost=Decimal("0.175000"))])
    _, text = _export(engine, ExportFormat.JSONL)
    with Session(engine) as session:
        [cdr] = cdrs_for_call(session, "call-1")
        assert cdr_json(cdr) == json.loads(text)


def test_xml_export_is_well_formed_and_escapes_markup_and_illegal_characters(engine: Engine) -> None:
    insert_cdrs(engine, [cdr_row(1, sip_reason=NASTY), cdr_row(2, account=None)])
    count, text = _export(engine, ExportFormat.XML)
    root = defusedxml.ElementTree.fromstring(text.encode())
    cdrs = root.findall("cdr")
    assert count == 2 and root.tag == "cdrs" and len(cdrs) == 2
    assert cdrs[0].findtext("sip_reason") == NASTY.replace("\x01", "\ufffd")
    assert cdrs[0].findtext("cost") == "0.010000"
    assert cdrs[1].find("account") is None  # NULL: the element is left out
    assert isinstance(cdrs[0], ElementTree.Element)


def test_export_honours_the_filter(engine: Engine) -> None:
    insert_cdrs(engine, [cdr_row(1), cdr_row(2, account="globex"), cdr_row(3, account="globex")])
    count, text = _export(engine, ExportFormat.JSONL, CdrFilter(account="globex"))
    assert count == 2 and [json.loads(line)["call_id"] for line in text.splitlines()] == ["call-2", "call-3"]


class _Sink(io.TextIOBase):
    """Counts what is written and keeps none of it."""

    written = 0

    def write(self, text: str) -> int:
        self.written += len(text)
        return len(text)


def test_export_streams_so_memory_does_not_grow_with_the_number_of_cdrs(engine: Engine) -> None:
    n = 4000
    insert_cdrs(engine, (cdr_row(i) for i in range(n)))
    sink = _Sink()
    tracemalloc.start()
    try:
        count = export_cdrs(engine, sink, ExportFormat.JSONL, batch=200)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the whole result set (~7 MB as rows, ~3.9 MB as text) never sits in memory at once
    assert count == n and sink.written > 3_500_000
    assert peak < 2_500_000, f"peak {peak / 1e6:.1f} MB: the export held the result set"
