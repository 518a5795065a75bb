"""`switchd demo`: the whole system in one command (switchd.demo), nothing to set up."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import trio

from ._common import EXIT_FAILURE, EXIT_USAGE, CliError, Commands, Parser, count_arg, fail, stdout

MIN_CALLS = 12  # one round of every ending


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`demo`."""
    demo = commands.add_parser("demo", parents=[logging_options], help="see it all work in under a minute",
                               description="Start a node (temporary directory, SQLite) with two simulated "
                                           "carriers and simulated phones, place calls with every ending, kill "
                                           "a call and the router, hot-swap the routing policy, then print the "
                                           "CDRs, the billing summary and where the data is. Exit 0 when every "
                                           "call placed has exactly one closed CDR, 1 otherwise.")
    demo.add_argument("--calls", metavar="N", type=count_arg, default=36,
                      help=f"calls to place (default 36; at least {MIN_CALLS}, one round of every ending)")
    demo.add_argument("--dir", metavar="DIR", type=Path, default=None,
                      help="where to keep the configuration, database and spool (default: a new temporary "
                           "directory, kept and printed at the end)")
    demo.set_defaults(handler=_cmd_demo, default_level=logging.CRITICAL)


def _cmd_demo(args: argparse.Namespace) -> int:
    from switchd.app import StartError  # here, so the other commands do not import the whole daemon
    from switchd.demo import DemoPlan, play

    if args.calls < MIN_CALLS:
        raise CliError(f"demo: --calls {args.calls} is below {MIN_CALLS}, one round of every ending", EXIT_USAGE)
    workdir = args.dir if args.dir is not None else Path(tempfile.mkdtemp(prefix="switchd-demo-"))
    try:
        report = trio.run(play, stdout(), workdir.resolve(), DemoPlan(calls=args.calls))
    except StartError as exc:
        raise CliError(f"demo: cannot start: {exc}", EXIT_USAGE) from None
    if not report.ok:
        return fail(f"demo: the check failed: {len(report.results)} calls placed, {len(report.cdrs)} CDRs, "
                    f"{len(report.missing)} missing, {report.left_open} open, router restarts "
                    f"{report.router_restarts}, node exit {report.node_exit}", EXIT_FAILURE)
    return 0
