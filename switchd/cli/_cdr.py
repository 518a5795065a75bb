"""`switchd cdr`: CDRs from the billing database, read directly (the daemon need not run).

    switchd cdr [list] [FILTERS] [--newest] [--limit N] [--format table|csv|json|xml]
    switchd cdr summary [FILTERS] [--by day|account|destination|gateway|disposition] [--json]
    switchd cdr export [FILTERS] [--newest] [--format csv|json|xml]

FILTERS: --since T --until T --caller P --callee P --disposition D --account A --node N
--gateway G --status S --call-id ID, and the database: --config FILE or --db URL. They may be
given before or after the subcommand.

A listing shows a page (a table); an export streams every matching CDR from a server-side
cursor, one batch in memory at a time, however many there are. The summary (ASR, ACD, billed
minutes, cost per group) reads the rollups when its filters allow (whole UTC days, account,
disposition) and scans the CDRs otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from switchd.billing import (
    Cdr,
    CdrFilter,
    CdrStatus,
    ExportFormat,
    GroupBy,
    SummaryRow,
    export_cdrs,
    list_cdrs,
    open_engine,
    summarize,
)

from ._common import (
    CONFIG_HELP,
    EXIT_USAGE,
    CliError,
    Commands,
    Parser,
    count_arg,
    database_url,
    disposition_arg,
    enum_arg,
    number_prefix_arg,
    require_database,
    stdout,
    subcommand_option,
    time_arg,
)
from ._logging import logging_options as quiet_logging_options

_FORMATS = {"csv": ExportFormat.CSV, "json": ExportFormat.JSONL, "xml": ExportFormat.XML}
DEFAULT_CDR_LIMIT = 50


# the filters, and where the database is: on `cdr` and on each of its subcommands
_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("--since", {"metavar": "TIME", "type": time_arg,
                 "help": "setup at or after TIME (ISO 8601; UTC if no zone)"}),
    ("--until", {"metavar": "TIME", "type": time_arg, "help": "setup before TIME"}),
    ("--caller", {"metavar": "PREFIX", "type": number_prefix_arg, "help": "E.164 caller prefix (44 or +44)"}),
    ("--callee", {"metavar": "PREFIX", "type": number_prefix_arg, "help": "E.164 callee prefix"}),
    ("--disposition", {"type": disposition_arg, "help": "ANSWERED, BUSY, NO_ANSWER, CANCELLED ..."}),
    ("--account", {"metavar": "NAME", "help": "the caller's account"}),
    ("--node", {"metavar": "NAME", "help": "the node that handled the call"}),
    ("--gateway", {"metavar": "NAME", "help": "the gateway the call was sent to"}),
    ("--status", {"type": enum_arg(CdrStatus, "a CDR status"), "help": "open (in progress), closed or recovered"}),
    ("--call-id", {"metavar": "ID", "help": "every attempt of one call"}),
    ("--config", {"metavar": "FILE", "type": Path, "help": CONFIG_HELP}),
    ("--db", {"metavar": "URL", "help": "the billing database URL instead of the configuration's"}),
]


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`cdr` and its subcommands `list` (the default), `summary` and `export`."""
    cdr = commands.add_parser("cdr", parents=[logging_options],
                              help="call detail records: list, summary, export",
                              description="CDRs from the billing database named in the configuration (or --db). "
                                          "Without a subcommand: list them.")
    cdr.set_defaults(handler=_cmd_list, default_level=logging.WARNING)
    sub = cdr.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    inherited = [quiet_logging_options(suppress=True)]
    list_ = sub.add_parser("list", parents=inherited,
                           help="a page of CDRs as a table (default) or all as CSV/JSON/XML")
    list_.set_defaults(handler=_cmd_list)
    summary = sub.add_parser("summary", parents=inherited,
                             help="ASR, ACD, minutes and cost by day, account …",
                             description="Calls, answered, ASR, ACD, billed minutes and cost of the finished CDRs, "
                                         "grouped by day (UTC), account, destination (rate prefix), gateway or "
                                         "disposition.")
    summary.add_argument("--by", choices=[g.value for g in GroupBy], default=GroupBy.DAY.value,
                         help="what to group by (default day)")
    summary.add_argument("--json", action="store_true",
                         help="the rows as JSON, as GET /billing/summary answers")
    summary.set_defaults(handler=_cmd_summary)
    export = sub.add_parser("export", parents=inherited, help="every matching CDR as CSV, JSON lines or XML",
                            description="Stream every matching CDR with all its fields, in constant memory.")
    export.add_argument("--format", choices=sorted(_FORMATS), default="csv",
                        help="csv (default), json (one object per line) or xml")
    export.set_defaults(handler=_cmd_export)

    every = [list_, summary, export]
    for flag, options in _OPTIONS:
        subcommand_option(cdr, every, flag, **options)
    subcommand_option(cdr, [list_, export], "--newest", action="store_true", help="newest setup first")
    subcommand_option(cdr, [list_], "--limit", metavar="N", type=count_arg, default=None,
                      help=f"at most N records (table only; default {DEFAULT_CDR_LIMIT})")
    subcommand_option(cdr, [list_], "--format", choices=["table", *sorted(_FORMATS)], default="table",
                      help="table (default), csv, json (one object per line) or xml")


def _where(args: argparse.Namespace) -> CdrFilter:
    return CdrFilter(since=args.since, until=args.until, caller_prefix=args.caller, callee_prefix=args.callee,
                     disposition=args.disposition, account=args.account, node=args.node, gateway=args.gateway,
                     status=args.status, call_id=args.call_id)


def _engine(args: argparse.Namespace) -> Engine:
    url = database_url(args)
    require_database(url)
    return open_engine(url)


def _unreadable(engine: Engine, exc: SQLAlchemyError) -> CliError:
    shown = engine.url.render_as_string(hide_password=True)
    return CliError(f"cannot read CDRs from {shown}: {str(exc).splitlines()[0]}")


# --- list and export ----------------------------------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> int:
    if args.format != "table":
        if args.limit is not None:
            raise CliError(f"--limit applies to --format table; a {args.format} export streams every matching "
                           "record (narrow it with --since/--until)", EXIT_USAGE)
        return _cmd_export(args)
    where = _where(args)
    engine = _engine(args)
    try:
        with Session(engine) as session:
            page = list_cdrs(session, where, limit=args.limit or DEFAULT_CDR_LIMIT, newest=args.newest)
            print_cdrs(stdout(), page.cdrs, more=page.next is not None)
    except SQLAlchemyError as exc:
        raise _unreadable(engine, exc) from exc
    finally:
        engine.dispose()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    where = _where(args)
    engine = _engine(args)
    try:
        export_cdrs(engine, sys.stdout, _FORMATS[args.format], where, newest=args.newest)
    except SQLAlchemyError as exc:
        raise _unreadable(engine, exc) from exc
    finally:
        engine.dispose()
    return 0


def print_cdrs(console: Console, cdrs: Sequence[Cdr], *, more: bool) -> None:
    """CDRs as a rich table, in the order given."""
    table = Table(show_edge=False)
    for name, justify in [("setup (UTC)", "left"), ("caller", "left"), ("callee", "left"),
                          ("disposition", "left"), ("code", "right"), ("talk s", "right"),
                          ("billed s", "right"), ("cost", "right"), ("gateway", "left"), ("hangup", "left"),
                          ("call-id", "left")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for cdr in cdrs:
        billable = "" if cdr.billable_ms is None else f"{cdr.billable_ms / 1000:.3f}"
        cost = "" if cdr.cost is None else f"{cdr.cost:f} {cdr.currency or ''}".strip()
        disposition = cdr.disposition.value if cdr.disposition is not None else cdr.status.value
        table.add_row(
            cdr.setup_at.strftime("%Y-%m-%d %H:%M:%S"), escape(cdr.caller or cdr.caller_raw),
            escape(cdr.callee or cdr.callee_raw), disposition,
            "" if cdr.sip_code is None else str(cdr.sip_code),
            billable, "" if cdr.billed_seconds is None else str(cdr.billed_seconds), cost,
            escape(cdr.gateway or ""), cdr.hangup_by.value if cdr.hangup_by else "", escape(cdr.call_id),
        )
    console.print(table)
    shown = f"{len(cdrs)} CDR{'s' if len(cdrs) != 1 else ''}"
    console.print(f"{shown}; more match: raise --limit or narrow with --since" if more else shown)


# --- summary ------------------------------------------------------------------------------------------------


def _cmd_summary(args: argparse.Namespace) -> int:
    by = GroupBy(args.by)
    where = _where(args)
    engine = _engine(args)
    try:
        with Session(engine) as session:
            rows = summarize(session, by, where)
    except SQLAlchemyError as exc:
        raise _unreadable(engine, exc) from exc
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps({"by": by.value, "rows": [summary_json(r) for r in rows]}, indent=2,
                         ensure_ascii=False))
        return 0
    if not rows:
        stdout().print("no finished calls match (open ones count with --status open)")
        return 0
    stdout().print(summary_table(by, rows))
    return 0


def summary_json(row: SummaryRow) -> dict[str, object]:
    """One summary row as GET /billing/summary answers it (cost a decimal string: exact)."""
    return {"key": row.key, "calls": row.calls, "answered": row.answered, "asr": round(row.asr, 6),
            "acd": round(row.acd, 3), "minutes": float(row.billed_minutes), "cost": format(row.cost, "f"),
            "currency": row.currency}


def summary_table(by: GroupBy, rows: Sequence[SummaryRow]) -> Table:
    """The summary as a table: one row per group (its costs per currency side by side), then the total."""
    table = Table(show_edge=False)
    for name, justify in [(by.value, "left"), ("calls", "right"), ("answered", "right"), ("ASR", "right"),
                          ("ACD", "right"), ("minutes", "right"), ("cost", "right")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    groups: dict[str | None, list[SummaryRow]] = {}
    for row in rows:  # a row per (group, currency), in key order: unrated calls have no currency
        groups.setdefault(row.key, []).append(row)
    for key, parts in groups.items():
        table.add_row(*_cells(key if key is not None else _none(by), parts))
    if len(groups) > 1:
        table.add_row(*_cells("total", rows), style="bold")
    return table


def _none(by: GroupBy) -> str:
    return {GroupBy.DESTINATION: "(unrated)", GroupBy.DISPOSITION: "(open)"}.get(by, "(none)")


def _cells(key: str, rows: Sequence[SummaryRow]) -> list[str]:
    calls, answered = sum(r.calls for r in rows), sum(r.answered for r in rows)
    talk = sum((r.billable_seconds for r in rows), Decimal(0))
    minutes = sum((r.billed_minutes for r in rows), Decimal(0))
    costs: dict[str, Decimal] = {}
    for row in rows:
        if row.currency is not None:
            costs[row.currency] = costs.get(row.currency, Decimal(0)) + row.cost
    asr = 100 * answered / calls if calls else 0.0
    acd = float(talk) / answered if answered else 0.0
    return [escape(key), str(calls), str(answered), f"{asr:.1f}%", f"{acd:.1f}s", f"{minutes:.1f}",
            " + ".join(f"{cost:f} {currency}" for currency, cost in sorted(costs.items()))]
