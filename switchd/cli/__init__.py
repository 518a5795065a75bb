"""The `switchd` command line: argparse subcommands that call the library and render with rich.

    switchd run     [--config FILE] [--pidfile FILE]      the daemon (switchd.app.run_daemon)
    switchd sim | call | load                             the simulator (switchd.sim)
    switchd status | top                                  the running node, at a glance or live
    switchd calls [list|show|hangup CALL-ID]              calls in progress
    switchd trace [CALL-ID] [--follow] [--full]           a call's SIP ladder, from the switch
    switchd routes [show|reload] | rates load FILE | policy upgrade NAME
    switchd chaos --kill call|router|billing|events       kill on purpose, check no CDR was lost
    switchd cdr [list|summary|export]                     CDRs from the database
    switchd db upgrade|current|history                    the billing schema's migrations
    switchd accounts add|list|passwd|set|del              the accounts phones authenticate with

One module per command group (`_run`, `_sim`, `_status`, `_calls`, `_trace`, `_routing`, `_chaos`,
`_cdr`, `_db`, `_accounts`), each adding its parsers with `add_parsers(commands, logging_options)`; `_main`
builds the parser and runs a command; `_common` holds what they share. The commands that talk to
the running daemon do so over its HTTP API (`_client`, `_connect`); `cdr`, `db` and `accounts`
work on the database directly. rich is imported only here. An error a user can cause is one red line on
stderr and a non-zero exit status (2 for a bad argument or configuration, 1 for a failure at run
time), never a traceback. docs/cli.md has every command with an example.
"""

from ._cdr import print_cdrs
from ._common import EXIT_FAILURE, EXIT_USAGE, PIPE_WIDTH, CliError
from ._logging import JsonLinesFormatter, OneLineFormatter, setup_logging
from ._main import build_parser, main
from ._sim import outcome_line, print_ladder, print_load_report

__all__ = [  # sorted
    "CliError",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "JsonLinesFormatter",
    "OneLineFormatter",
    "PIPE_WIDTH",
    "build_parser",
    "main",
    "outcome_line",
    "print_cdrs",
    "print_ladder",
    "print_load_report",
    "setup_logging",
]
