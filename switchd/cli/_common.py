"""What every command shares: the error a user sees, exit statuses, argument types, the consoles.

An error a user can cause is a `CliError` (or one of the library errors `_main` knows): one red
line on stderr and an exit status — 2 for a bad argument or configuration, 1 for a failure at run
time — never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn, TypeAlias, TypeVar

from rich.console import Console
from rich.markup import escape

from switchd.billing import Disposition
from switchd.config import Config, default_config_path, load

_Enum = TypeVar("_Enum", bound=StrEnum)
EXIT_FAILURE = 1  # the command ran and failed (connection refused, no final answer ...)
EXIT_USAGE = 2  # a bad argument or configuration
PIPE_WIDTH = 200  # columns of output that goes to a file or pipe, so tables are not cut at 80
CONFIG_HELP = "configuration file (default: config/switchd.toml under the current directory)"


class CliError(Exception):
    """An error to show the user as one red line, with the exit status to return."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a CliError (one red line, exit 2) rather than usage + exit."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]
        raise CliError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)", EXIT_USAGE)


# The `switchd` subcommands action each command group adds its parsers to.
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"


# --- argument types -------------------------------------------------------------------------------


def seconds_arg(text: str) -> float:
    """A number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def positive_arg(kind: Callable[[str], float]) -> Callable[[str], float]:
    """A converter to a finite number > 0 of `kind`."""

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
        return value

    return convert


def count_arg(text: str) -> int:
    """A whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def time_arg(text: str) -> datetime:
    """An ISO 8601 date or date-time; naive values are UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time (2026-11-25T09:00)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def number_prefix_arg(text: str) -> str:
    """An E.164 prefix for a CDR filter: digits, optionally after '+'."""
    digits = text.removeprefix("+")
    if not digits.isascii() or not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number prefix (digits, optionally after '+')")
    return text


def enum_arg(kind: type[_Enum], what: str) -> Callable[[str], _Enum]:
    """A converter to the member of `kind` whose value is the text, in any case."""

    def convert(text: str) -> _Enum:
        for member in kind:
            if member.value.lower() == text.lower():
                return member
        raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({', '.join(m.value for m in kind)})")

    return convert


disposition_arg = enum_arg(Disposition, "a disposition")


# --- configuration and output --------------------------------------------------------------------------


def load_config(path: Path | None) -> Config:
    """The configuration in `path`, or in the default file; raises ConfigError."""
    return load(path if path is not None else default_config_path())


def database_options(parser: argparse.ArgumentParser) -> None:
    """--config FILE or --db URL: the billing database a command reads without the daemon."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="FILE", type=Path, help=CONFIG_HELP)
    where.add_argument("--db", metavar="URL", help="the billing database URL instead of the configuration's")


def database_url(args: argparse.Namespace) -> str:
    """The billing database URL --config or --db point at (CliError, exit 2, for both)."""
    if args.db is not None and args.config is not None:
        raise CliError("--config and --db are two ways to name the database: give one", EXIT_USAGE)
    url: str = args.db if args.db is not None else load_config(args.config).database.url
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a sqlite:/// URL; None for another database or an in-memory one."""
    scheme, _, rest = url.partition(":///")
    if scheme.split("+")[0] != "sqlite" or not rest or rest == ":memory:":
        return None
    return Path(rest)


def require_database(url: str) -> None:
    """CliError (exit 1) for a SQLite database that does not exist: reading must not create it."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise CliError(f"no billing database at {path} (`switchd run` or `switchd db upgrade` creates it)")


def fail(message: str, code: int) -> int:
    """Print `message` as one red line on stderr; returns `code`."""
    Console(stderr=True, highlight=False).print(f"[red]switchd: {escape(message)}[/]", soft_wrap=True)
    return code


def stdout() -> Console:
    """A console on stdout: the terminal's width, or PIPE_WIDTH columns into a file or pipe."""
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width)


def actions_of(commands: Commands, name: str, parents: list[Parser], *, help: str,
               description: str | None = None) -> Commands:
    """A command that is only its subcommands (`switchd db upgrade`): where to add them.

    Named without one, it is a usage error (exit 2) saying so.
    """
    parser = commands.add_parser(name, parents=parents, help=help, description=description)

    def missing(args: argparse.Namespace) -> int:
        parser.error("an ACTION is missing")

    parser.set_defaults(handler=missing, default_level=logging.WARNING)
    return parser.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)


def subcommand_option(parent: argparse.ArgumentParser, subs: Sequence[argparse.ArgumentParser], *flags: str,
                      **kwargs: Any) -> None:
    """Add an option to a command that runs a default subcommand when none is named, and to those.

    `switchd calls --json` and `switchd calls list --json` must both work. On the subcommands the
    option has no default (SUPPRESS): argparse copies a subparser's defaults over what the parent
    parsed, which would lose the --json of `switchd calls --json list`.
    """
    parent.add_argument(*flags, **kwargs)
    for sub in subs:
        sub.add_argument(*flags, **{**kwargs, "default": argparse.SUPPRESS})
