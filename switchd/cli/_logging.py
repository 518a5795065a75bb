"""Logging for every command: rich on a terminal, one line per record or JSON lines otherwise.

`setup_logging` installs one handler on the root logger (replacing the one it installed before);
the library only logs, with context in `extra=`, and these formatters show those fields.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

from ._common import Parser

_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of `record` (call_id, gateway, ...), JSON-friendly."""
    return {
        key: value if isinstance(value, str | int | float | bool | None) else repr(value)
        for key, value in vars(record).items()
        if key not in _RECORD_FIELDS and not key.startswith("_")
    }


class OneLineFormatter(logging.Formatter):
    """`2026-11-25 09:20:01.123 INFO  switchd.switch._listener: message [call_id=… gateway=…]`.

    One record, one line, whatever it carries: an exception is reduced to its last line (type and
    message) unless the handler runs at DEBUG, where the traceback follows on the same line.
    """

    def __init__(self, *, tracebacks: bool = False) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
        self._tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        text = logging.Formatter.formatMessage(self, self._prepare(record))
        extras = " ".join(f"{key}={value}" for key, value in _extras(record).items() if key != "exc")
        if extras:
            text += f" [{extras}]"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += " | " + (self.formatException(record.exc_info) if self._tracebacks
                             else f"{type(exc).__name__}: {exc}")
        return text.replace("\n", " | ")

    def _prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        return record


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and every `extra=` field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


_installed: logging.Handler | None = None


def setup_logging(level: int, *, fmt: str = "auto", stream: Any = None) -> logging.Handler:
    """Send switchd's logs to stderr at `level`.

    `fmt`: ``auto`` (rich on a terminal, one readable line per record otherwise), ``text`` (one
    line per record), ``json`` (one JSON object per line, for log shippers).
    """
    global _installed
    stream = stream or sys.stderr
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonLinesFormatter())
    elif fmt == "auto" and stream.isatty():
        handler = RichHandler(console=Console(file=stream), show_path=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(OneLineFormatter(tracebacks=level <= logging.DEBUG))
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    root.addHandler(handler)
    root.setLevel(level)
    _installed = handler
    return handler


def level_of(args: argparse.Namespace) -> int:
    """The log level a command's -v/--log-level options ask for, over its default_level."""
    if args.log_level:
        return int(logging.getLevelName(args.log_level))
    default: int = args.default_level
    return max(logging.DEBUG, default - 10 * args.verbose) if args.verbose else default


def logging_options(*, suppress: bool = False) -> Parser:
    """The parent parser of every command: -v, --log-level, --log-format.

    `suppress`: for a subcommand of a command that has them too (`switchd calls list`), without
    defaults, so they do not overwrite what the command's own options parsed (see subcommand_option).
    """
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    options = Parser(add_help=False)
    options.add_argument("-v", "--verbose", action="count", **{"default": 0, **unset},
                         help="more log output (-v: INFO, -vv: DEBUG)")
    options.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper, **unset,
                         help="log level (default: INFO for run and sim, WARNING otherwise)")
    options.add_argument("--log-format", choices=["auto", "text", "json"], **{"default": "auto", **unset},
                         help="auto (rich on a terminal, one line per record otherwise), text or json")
    return options
