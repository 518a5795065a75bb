"""`switchd routes`, `switchd rates` and `switchd policy`: the running router, changed over the API.

    switchd routes [show] [--json]                       GET /routes
    switchd routes reload [--json]                       POST /routes/reload (what SIGHUP does)
    switchd rates load FILE [--plan P] [--currency C]    POST /rates: a CSV or XML deck
    switchd policy upgrade NAME                          POST /policy: the hot code swap

A change the daemon refuses (a routes file or deck with an error, an unknown policy) changes
nothing there; here it is one red line with the daemon's reason, exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from ._client import JsonObject
from ._common import EXIT_USAGE, CliError, Commands, Parser, actions_of, stdout, subcommand_option
from ._connect import api_client, api_options
from ._logging import logging_options as quiet_logging_options
from ._views import children, integer, text

_DECK_TYPES = {".csv": "text/csv", ".xml": "application/xml"}


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`routes`, `rates` and `policy`."""
    options = api_options()
    inherited = [quiet_logging_options(suppress=True), api_options(suppress=True)]

    routes = commands.add_parser("routes", parents=[logging_options, options],
                                 help="the routing table: show, reload",
                                 description="The running daemon's routing table. Without a subcommand: show it.")
    routes.set_defaults(handler=_cmd_routes_show, default_level=logging.WARNING)
    sub = routes.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    show = sub.add_parser("show", parents=inherited,
                          help="the routes, their gateways and the policy (default)")
    show.set_defaults(handler=_cmd_routes_show)
    reload = sub.add_parser("reload", parents=inherited, help="read the routes and rates again (as SIGHUP)",
                            description="Read the routes file and the rate deck again and swap them in; a file "
                                        "with an error changes nothing. Calls in flight keep their routes.")
    reload.set_defaults(handler=_cmd_routes_reload)
    subcommand_option(routes, [show, reload], "--json", action="store_true", help="the API's JSON answer")

    rates = actions_of(commands, "rates", [logging_options], help="load a rate deck into the running node")
    load = rates.add_parser("load", parents=[quiet_logging_options(suppress=True), options],
                                   help="upload a CSV or XML deck",
                                   description="Upload a rate deck (CSV or XML, by its suffix) to the running "
                                               "daemon; new calls are rated with it. A deck with an error "
                                               "changes nothing.")
    load.add_argument("file", metavar="FILE", type=Path, help="the deck: FILE.csv or FILE.xml")
    load.add_argument("--plan", help="rate plan of a CSV deck (default: the daemon's default_rate_plan)")
    load.add_argument("--currency", help="ISO 4217 currency of a CSV deck's prices (default: the daemon's)")
    load.add_argument("--json", action="store_true", help="the API's JSON answer")
    load.set_defaults(handler=_cmd_rates_load)

    policy = actions_of(commands, "policy", [logging_options], help="swap the routing policy (hot code swap)")
    upgrade = policy.add_parser("upgrade", parents=[quiet_logging_options(suppress=True), options],
                                        help="swap in the policy NAME",
                                        description="Swap the router's policy for NAME while it runs (the hot "
                                                    "code swap): new calls are routed by it, calls in flight "
                                                    "keep their routes.")
    upgrade.add_argument("name", metavar="NAME", help="priority_weight or least_cost")
    upgrade.add_argument("--json", action="store_true", help="the API's JSON answer")
    upgrade.set_defaults(handler=_cmd_policy_upgrade)


def _print_json(body: JsonObject) -> int:
    print(json.dumps(body, indent=2, ensure_ascii=False))
    return 0


# --- routes -------------------------------------------------------------------------------------------------


def _cmd_routes_show(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        body = client.get("/routes")
    if args.json:
        return _print_json(body)
    console = stdout()
    console.print(routes_table(body))
    console.print(f"policy {escape(text(body, 'policy') or '?')}; {len(children(body, 'routes'))} routes; "
                  f"reloaded {integer(body, 'reloads')} times since start")
    return 0


def routes_table(body: JsonObject) -> Table:
    """GET /routes as a table: one row per route, its gateways in order of preference."""
    table = Table(show_edge=False, pad_edge=False)
    for name in ("route", "prefix", "strip", "prepend", "gateways (priority/weight)"):
        table.add_column(name)
    for route in children(body, "routes"):
        gateways = "\n".join(
            f"{escape(text(gw, 'name') or '?')} {escape(text(gw, 'address') or '')}"
            f"{'/' + escape(text(gw, 'transport') or '') if text(gw, 'transport') else ''}"
            f" ({integer(gw, 'priority')}/{integer(gw, 'weight')})"
            for gw in children(route, "gateways")
        )
        prefix = text(route, "prefix")
        table.add_row(escape(text(route, "id") or ""), escape(prefix) if prefix else "(any)",
                      str(integer(route, "strip")), escape(text(route, "prepend") or ""), gateways)
    return table


def _cmd_routes_reload(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        body = client.post("/routes/reload")
    if args.json:
        return _print_json(body)
    rates = body.get("rates")
    changes = body.get("gateways")
    changes = changes if isinstance(changes, list) else []
    stdout().print(f"reloaded: {integer(body, 'routes')} routes"
                   + (f", {rates} tariffs" if isinstance(rates, int) else "; no rate deck configured")
                   + "".join(f"; gateway {escape(str(c))}" for c in changes))
    return 0


# --- rates and policy ---------------------------------------------------------------------------------------


def _cmd_rates_load(args: argparse.Namespace) -> int:
    path: Path = args.file
    content_type = _DECK_TYPES.get(path.suffix.lower())
    if content_type is None:
        raise CliError(f"rates load: {path}: a deck is FILE.csv or FILE.xml", EXIT_USAGE)
    if content_type != "text/csv" and (args.plan or args.currency):
        raise CliError("rates load: --plan and --currency are for a CSV deck; an XML deck names its own",
                       EXIT_USAGE)
    try:
        deck = path.read_bytes()
    except OSError as exc:
        raise CliError(f"rates load: cannot read {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    with api_client(args) as client:
        body = client.post("/rates", data=deck, content_type=content_type, plan=args.plan,
                           currency=args.currency)
    if args.json:
        return _print_json(body)
    stdout().print(f"rate plan {escape(text(body, 'plan') or '?')}: {integer(body, 'tariffs')} tariffs loaded "
                   f"from {escape(str(path))}; new calls are rated with them")
    return 0


def _cmd_policy_upgrade(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        body = client.post("/policy", {"name": args.name})
    if args.json:
        return _print_json(body)
    previous, now = (escape(text(body, key) or "?") for key in ("previous", "policy"))
    stdout().print(f"routing policy {previous} → {now}; new calls are routed by it, calls in flight keep their "
                   "routes")
    return 0
