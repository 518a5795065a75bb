"""What `switchd cdr export` and summaries need beyond test_queries: an export newest first, and
summaries filtered on gateway or Call-ID (a scan: the rollups keep neither)."""

from __future__ import annotations

import io
import json

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from switchd.billing import CdrFilter, ExportFormat, GroupBy, export_cdrs, summarize

from .factories import cdr_row, insert_cdrs


def _gateways(engine: Engine) -> Engine:
    insert_cdrs(engine, [cdr_row(n, gateway=["gw-a", "gw-b", None][n % 3]) for n in range(9)])
    return engine


def test_an_export_can_stream_newest_first(engine: Engine) -> None:
    _gateways(engine)
    out = io.StringIO()
    assert export_cdrs(engine, out, ExportFormat.JSONL, CdrFilter(gateway="gw-b"), newest=True) == 3
    assert [json.loads(line)["call_id"] for line in out.getvalue().splitlines()] == ["call-7", "call-4", "call-1"]


def test_the_summary_by_gateway_counts_each_gateways_calls(engine: Engine) -> None:
    _gateways(engine)
    with Session(engine) as session:
        rows = {r.key: (r.calls, r.answered) for r in summarize(session, GroupBy.GATEWAY)}
        only_a = summarize(session, GroupBy.DAY, CdrFilter(gateway="gw-a"))
        one_call = summarize(session, GroupBy.DAY, CdrFilter(call_id="call-1"))
    assert rows == {"gw-a": (3, 3), "gw-b": (3, 3), None: (3, 3)}
    assert [(r.key, r.calls) for r in only_a] == [("2026-11-25", 3)]  # the rollups know no gateway: a scan
    assert [(r.key, r.calls) for r in one_call] == [("2026-11-25", 1)]
