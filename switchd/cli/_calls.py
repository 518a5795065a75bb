"""`switchd calls`: the calls in progress, one call in detail, and ending one, over the API.

    switchd calls [list] [--limit N] [--json]        GET /calls
    switchd calls show CALL-ID [--json]              GET /calls/{call_id}
    switchd calls hangup CALL-ID                     DELETE /calls/{call_id}: BYE on both legs (or
                                                     CANCEL and 487 while it rings); its CDR is
                                                     closed as ended by the operator
"""

from __future__ import annotations

import argparse
import json
import logging

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from ._client import JsonObject, call_path
from ._common import Commands, Parser, count_arg, stdout, subcommand_option
from ._connect import api_client, api_options
from ._logging import logging_options as quiet_logging_options
from ._views import children, clock, duration, number, text

DEFAULT_LIMIT = 100
_CALL_FIELDS = ("call_id", "state", "caller", "callee", "gateway", "pid")


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`calls` and its subcommands `list` (the default), `show`, `hangup`."""
    options = api_options()
    calls = commands.add_parser("calls", parents=[logging_options, options],
                                help="calls in progress: list, show, end",
                                description="The calls in progress in the running daemon. Without a subcommand: "
                                            "list them.")
    calls.set_defaults(handler=_cmd_list, default_level=logging.WARNING)
    sub = calls.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    inherited = [quiet_logging_options(suppress=True), api_options(suppress=True)]
    list_ = sub.add_parser("list", parents=inherited, help="list the calls in progress (default)")
    list_.set_defaults(handler=_cmd_list)
    subcommand_option(calls, [list_], "--limit", metavar="N", type=count_arg, default=DEFAULT_LIMIT,
                      help=f"at most N calls (default {DEFAULT_LIMIT})")

    show = sub.add_parser("show", parents=inherited, help="one call and its legs")
    show.add_argument("call_id", metavar="CALL-ID", help="the caller's Call-ID (as `switchd calls` lists it)")
    show.set_defaults(handler=_cmd_show)
    subcommand_option(calls, [list_, show], "--json", action="store_true", help="the API's JSON answer")

    hangup = sub.add_parser("hangup", parents=inherited, help="end one call (BYE both legs)",
                            description="End one call: BYE on both legs (CANCEL and 487 while it rings). Its "
                                        "CDR is closed as ended by the operator.")
    hangup.add_argument("call_id", metavar="CALL-ID", help="the caller's Call-ID")
    hangup.set_defaults(handler=_cmd_hangup)


def _cmd_list(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        body = client.get("/calls", limit=args.limit)
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    calls = children(body, "calls")
    console = stdout()
    console.print(calls_table(calls))
    console.print(f"{len(calls)} call{'s' if len(calls) != 1 else ''} in progress"
                  + ("; more may be: raise --limit" if len(calls) >= args.limit else ""))
    return 0


def calls_table(calls: list[JsonObject]) -> Table:
    """Calls as a table: Call-ID, state, caller, callee, gateway, start (UTC), duration."""
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("call-id", "left"), ("state", "left"), ("caller", "left"), ("callee", "left"),
                          ("gateway", "left"), ("started (UTC)", "left"), ("duration", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for call in calls:
        cells = (escape(text(call, k) or "") for k in ("call_id", "state", "caller", "callee", "gateway"))
        table.add_row(*cells, clock(call.get("started_at")), duration(number(call, "duration")))
    return table


def _cmd_show(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        call = client.get(call_path("/calls", args.call_id))
    if args.json:
        print(json.dumps(call, indent=2, ensure_ascii=False))
        return 0
    stdout().print(call_view(call))
    return 0


def call_view(call: JsonObject) -> Group:
    """One call: its fields, then its legs (whatever fields the API gives them)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key in _CALL_FIELDS:
        grid.add_row(key.replace("_", "-"), escape(text(call, key) or "-"))
    grid.add_row("started", escape(text(call, "started_at") or "-"))
    grid.add_row("answered", escape(text(call, "answered_at") or "-"))
    grid.add_row("duration", duration(number(call, "duration")))
    legs = children(call, "legs")
    columns = list(dict.fromkeys(key for leg in legs for key in leg if text(leg, key) is not None))
    table = Table(title="legs", show_edge=False, pad_edge=False, title_justify="left")
    for column in columns:
        table.add_column(column)
    for leg in legs:
        table.add_row(*(escape(text(leg, column) or "") for column in columns))
    return Group(grid, table) if legs else Group(grid)


def _cmd_hangup(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        answer = client.delete(call_path("/calls", args.call_id))
    ended = text(answer, "call_id") or args.call_id
    stdout().print(f"ending call {escape(ended)}: BYE to both legs (CANCEL while it rings); its CDR is closed "
                   "as ended by the operator")
    return 0
