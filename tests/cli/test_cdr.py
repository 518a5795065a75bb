"""`switchd cdr` list, summary and export: every filter, newest first, JSON, and streaming in bounded memory."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path

import pytest

from switchd.billing import CdrStatus, Disposition, open_engine, upgrade
from switchd.cli import main

from ..billing.factories import T0, cdr_row, insert_cdrs


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Six CDRs: two accounts, two nodes, two gateways, two days, busy and open ones."""
    url = f"sqlite:///{tmp_path / 'cdr.sqlite3'}"
    engine = open_engine(url)
    upgrade(engine)
    unanswered = {"answer_at": None, "billable_ms": None, "billed_seconds": 0, "cost": Decimal(0)}
    insert_cdrs(engine, [
        cdr_row(0, gateway="gw-a"),
        cdr_row(1, gateway="gw-b", account="globex", rate_prefix="1415", node="n2"),
        cdr_row(2, gateway="gw-a", disposition=Disposition.BUSY, sip_code=486, **unanswered),
        cdr_row(3, gateway="gw-b", setup_at=T0 + timedelta(days=1), billable_ms=90_000, billed_seconds=120,
                cost=Decimal("0.020000")),
        cdr_row(4, gateway="gw-a", status=CdrStatus.OPEN, disposition=None, end_at=None, **unanswered),
        cdr_row(5, gateway=None, disposition=Disposition.NO_ROUTE, sip_code=404, rate_prefix=None, currency=None,
                **{**unanswered, "cost": None}),
    ])
    engine.dispose()
    return url


def _call_ids(out: str) -> list[str]:
    return [json.loads(line)["call_id"] for line in out.splitlines()]


@pytest.mark.parametrize(("flags", "expected"), [
    ([], [0, 1, 2, 4, 5, 3]),  # setup order: call-3 is a day later
    (["--account", "globex"], [1]),
    (["--node", "n2"], [1]),
    (["--gateway", "gw-a"], [0, 2, 4]),
    (["--status", "open"], [4]),
    (["--status", "CLOSED", "--gateway", "gw-b"], [1, 3]),
    (["--call-id", "call-3"], [3]),
    (["--disposition", "busy"], [2]),
    (["--since", "2026-11-26"], [3]),
])
def test_export_filters_by_every_field(
    db: str, capsys: pytest.CaptureFixture[str], flags: list[str], expected: list[int]
) -> None:
    assert main(["cdr", "export", "--format", "json", "--db", db, *flags]) == 0
    assert _call_ids(capsys.readouterr().out) == [f"call-{n}" for n in expected]


@pytest.mark.parametrize("argv", [
    ["cdr", "export", "--format", "json", "--newest", "--gateway", "gw-a"],
    ["cdr", "--gateway", "gw-a", "--newest", "export", "--format", "json"],
    ["cdr", "--format", "json", "--newest", "--gateway", "gw-a"],
    ["cdr", "list", "--format", "json", "--gateway", "gw-a", "--newest"],
])
def test_options_work_before_or_after_the_subcommand_and_newest_comes_first(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main([*argv, "--db", db]) == 0
    assert _call_ids(capsys.readouterr().out) == ["call-4", "call-2", "call-0"]


def test_export_defaults_to_csv_with_every_field(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdr", "export", "--db", db, "--call-id", "call-1"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["call_id"], row["account"], row["node"], row["gateway"]) == ("call-1", "globex", "n2", "gw-b")


def test_the_table_lists_the_newest_page_with_newest(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdr", "--newest", "--limit", "2", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "call-3" in out and "call-5" in out and "call-0" not in out
    assert out.index("call-3") < out.index("call-5")  # 3 is a day later
    assert out.splitlines()[-1].startswith("2 CDRs; more match")


def test_summary_by_day_shows_asr_acd_minutes_and_cost_with_totals(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cdr", "summary", "--db", db]) == 0
    rows = {cells[0]: cells[1:] for cells in _table(capsys.readouterr().out)}
    # finished calls only (the open one is not billed yet); NO_ROUTE is unrated (no currency)
    assert rows == {
        "2026-11-25": ["4", "2", "50.0%", "60.0s", "2.0", "0.020000 USD"],
        "2026-11-26": ["1", "1", "100.0%", "90.0s", "2.0", "0.020000 USD"],
        "total": ["5", "3", "60.0%", "70.0s", "4.0", "0.040000 USD"],
    }


def _table(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")] for line in out.splitlines() if "│" in line]


@pytest.mark.parametrize(("by", "expected"), [
    ("account", {"acme": 4, "globex": 1}),
    ("destination", {"44": 3, "1415": 1, "(unrated)": 1}),
    ("gateway", {"gw-a": 2, "gw-b": 2, "(none)": 1}),
    ("disposition", {"ANSWERED": 3, "BUSY": 1, "NO_ROUTE": 1}),
])
def test_summary_groups_by_what_it_is_asked(
    db: str, capsys: pytest.CaptureFixture[str], by: str, expected: dict[str, int]
) -> None:
    assert main(["cdr", "summary", "--by", by, "--db", db]) == 0
    rows = {cells[0]: int(cells[1]) for cells in _table(capsys.readouterr().out)}
    assert rows.pop("total") == 5
    assert rows == expected


def test_summary_json_is_what_the_api_answers(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdr", "summary", "--by", "gateway", "--json", "--gateway", "gw-b", "--db", db]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {"by": "gateway", "rows": [{"key": "gw-b", "calls": 2, "answered": 2, "asr": 1.0, "acd": 75.0,
                                                 "minutes": 3.0, "cost": "0.030000", "currency": "USD"}]}


def test_a_summary_of_nothing_says_so(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdr", "summary", "--account", "nobody", "--db", db]) == 0
    assert capsys.readouterr().out.strip() == "no finished calls match (open ones count with --status open)"


def test_summary_of_open_calls_when_asked(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdr", "summary", "--by", "disposition", "--status", "open", "--json", "--db", db]) == 0
    assert [(r["key"], r["calls"]) for r in json.loads(capsys.readouterr().out)["rows"]] == [(None, 1)]


@pytest.mark.parametrize(("argv", "message"), [
    (["cdr", "--status", "done"], "'done' is not a CDR status (open, closed, recovered)"),
    (["cdr", "summary", "--by", "week"], "invalid choice: 'week'"),
    (["cdr", "export", "--format", "table"], "invalid choice: 'table'"),
    (["cdr", "--config", "x.toml"], "--config and --db are two ways"),
])
def test_bad_arguments_are_one_line_exit_2(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([*argv, "--db", db]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_missing_database_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.sqlite3"
    assert main(["cdr", "summary", "--db", f"sqlite:///{missing}"]) == 1
    assert "no billing database at" in capsys.readouterr().err and not missing.exists()


# --- many CDRs in constant memory ----------------------------------------------------------------------------

BIG = 50_000  # enough that holding the result set would cost ~100 MiB; docs/cli.md has a million


def _fill(url: str, count: int) -> None:
    """`count` CDRs, written with sqlite3's executemany (a bulk import; the ORM would take minutes)."""
    engine = open_engine(url)
    upgrade(engine)
    engine.dispose()
    template = cdr_row(0)
    columns = list(template)
    rows: Iterator[tuple[object, ...]] = (
        tuple(_sql(value) for value in {**template, "key": f"k{n}", "call_id": f"call-{n}",
                                         "setup_at": T0 + timedelta(milliseconds=n)}.values())
        for n in range(count)
    )
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.executemany(f"INSERT INTO cdrs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)


def _sql(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):  # as SQLAlchemy stores one in SQLite
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


@dataclass(frozen=True, slots=True)
class Export:
    peak_kib: int  # the process's peak resident memory
    status: int
    size: int  # bytes written
    records: int  # lines that start a CDR


def _export(url: str, fmt: str) -> Export:
    """`switchd cdr export` in a child process, its output read (and counted) through a pipe."""
    proc = subprocess.Popen([sys.executable, "-m", "switchd", "cdr", "export", "--format", fmt, "--db", url],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    size = records = 0
    for line in proc.stdout:
        size += len(line)
        records += line.startswith((b"{", b"<cdr>")) or b",call-" in line
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Export(usage.ru_maxrss, proc.returncode, size, records)


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A database of 10 CDRs and one of BIG."""
    where = tmp_path_factory.mktemp("export")
    small, big = f"sqlite:///{where / 'small.db'}", f"sqlite:///{where / 'big.db'}"
    _fill(small, 10)
    _fill(big, BIG)
    return small, big


@pytest.mark.parametrize("fmt", ["csv", "json", "xml"])
def test_an_export_of_many_cdrs_streams_in_the_memory_of_a_few(databases: tuple[str, str], fmt: str) -> None:
    small, big = (_export(url, fmt) for url in databases)
    assert (small.status, big.status) == (0, 0)
    assert (small.records, big.records) == (10, BIG)
    assert big.size > 10 * 2**20
    # holding the 50,000 rows as dicts costs about 100 MiB more than 10 (measured); streaming, nearly nothing
    assert big.peak_kib - small.peak_kib < 16 * 1024, f"{fmt}: {big.peak_kib - small.peak_kib} KiB more"
