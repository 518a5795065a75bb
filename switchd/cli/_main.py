"""The `switchd` parser, and `main`: run one command and turn a user's error into one red line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from switchd import __version__
from switchd.billing import AccountError, BillingError, InvalidAccount
from switchd.config import ConfigError
from switchd.sim import AddressError, BehaviourError, SimError

from . import _accounts, _calls, _cdr, _chaos, _db, _demo, _routing, _run, _sim, _status, _trace
from ._common import EXIT_FAILURE, EXIT_USAGE, CliError, Parser, fail
from ._logging import level_of, logging_options, setup_logging


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = Parser(
        prog="switchd",
        description="switchd: a SIP (TCP and UDP) softswitch (B2BUA) on trio, built from OTP patterns.",
    )
    parser.add_argument("--version", action="version", version=f"switchd {__version__}")
    options = logging_options()
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in (_demo, _run, _sim, _cdr, _db, _accounts, _status, _calls, _routing, _trace, _chaos):
        group.add_parsers(commands, options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `switchd` console script; returns the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stdout)
            return 0
        setup_logging(level_of(args), fmt=args.log_format)
        code: int = args.handler(args)
        sys.stdout.flush()  # here, so a closed pipe is handled below, not at interpreter exit
        return code
    except BaseExceptionGroup as group:  # raised inside a nursery: report it if it is one user error
        leaves = _leaves(group)
        if len(leaves) == 1 and (known := _user_error(leaves[0])) is not None:
            return fail(*known)
        raise
    except BrokenPipeError:
        # The reader went away (`switchd cdr --format csv | head`): stop quietly, and point stdout at
        # /dev/null so the interpreter's final flush does not fail again (Python's documented recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except (Exception, KeyboardInterrupt) as exc:
        known = _user_error(exc)
        if known is None:
            raise
        return fail(*known)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _user_error(exc: BaseException) -> tuple[str, int] | None:
    """The message and exit status for an error the user caused; None for anything else (a bug)."""
    match exc:
        case CliError():
            return str(exc), exc.code
        case InvalidAccount():
            return str(exc), EXIT_USAGE
        case AccountError():  # exists already, or does not exist
            return str(exc), EXIT_FAILURE
        case ConfigError():
            return f"bad configuration: {exc}", EXIT_USAGE
        case AddressError() | BehaviourError() | BillingError():
            return str(exc), EXIT_USAGE
        case SimError():
            return str(exc), EXIT_FAILURE
        case KeyboardInterrupt():
            return "interrupted", 130
    return None
