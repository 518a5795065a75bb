"""The `switchd` command line: argparse subcommands that call the library and render with rich.

Each subcommand parses its arguments, calls the library and renders the result; rich is imported
only here. An error is one red line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from switchd import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="switchd",
        description="switchd: a SIP-over-TCP softswitch (B2BUA) on trio, built from OTP patterns.",
    )
    parser.add_argument("--version", action="version", version=f"switchd {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `switchd` console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stdout)
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2  # not reached: parser.error exits
