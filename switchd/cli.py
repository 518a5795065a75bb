"""The `switchd` command line: argparse subcommands that call the library and render with rich.

    switchd run  [--config FILE]                         the daemon (switchd.app.run_daemon)
    switchd sim  [--listen ADDR]... [--default SPEC] [--route PREFIX=SPEC]... [--behaviours FILE]
    switchd call FROM TO [--server ADDR] [--hold S] [--cancel-after S] [--timeout S]
    switchd load --rate R --calls N --hold S [--server ADDR] [--from NUM] [--to NUM] [--timeout S]
    switchd cdr  [--config FILE] [--since T] [--until T] [--caller P] [--callee P] [--disposition D]
                 [--limit N] [--format table|csv|json|xml]

Each subcommand parses its arguments, calls the library and renders the result; rich is imported
only here. An error a user can cause is one red line on stderr and a non-zero exit status (2 for
a bad argument or configuration, 1 for a failure at run time), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import trio
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from switchd import __version__
from switchd.billing import (
    BillingError,
    Cdr,
    CdrFilter,
    Disposition,
    ExportFormat,
    export_cdrs,
    list_cdrs,
    open_engine,
)
from switchd.config import Config, ConfigError, default_config_path, load
from switchd.sim import (
    AddressError,
    BehaviourError,
    Behaviours,
    CallResult,
    LoadReport,
    Outcome,
    SimError,
    behaviour_spec,
    format_address,
    load_behaviours,
    parse_address,
    parse_behaviour,
    parse_route,
    place_call,
    run_load,
    start_sim,
)

log = logging.getLogger(__name__)

EXIT_FAILURE = 1  # the command ran and failed (connection refused, no final answer ...)
EXIT_USAGE = 2  # a bad argument or configuration
DEFAULT_SERVER = "127.0.0.1:5060"
DEFAULT_SIM_LISTEN = "127.0.0.1:5070"


class CliError(Exception):
    """An error to show the user as one red line, with the exit status to return."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a CliError (one red line, exit 2) rather than usage + exit."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]
        raise CliError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)", EXIT_USAGE)


# --- argument types -------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
        return value

    return convert


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


def _when(text: str) -> datetime:
    """An ISO 8601 date or date-time; naive values are UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time (2026-11-25T09:00)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _disposition(text: str) -> Disposition:
    try:
        return Disposition(text.upper())
    except ValueError:
        names = ", ".join(d.value for d in Disposition)
        raise argparse.ArgumentTypeError(f"{text!r} is not a disposition ({names})") from None


# --- the parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(
        prog="switchd",
        description="switchd: a SIP-over-TCP softswitch (B2BUA) on trio, built from OTP patterns.",
    )
    parser.add_argument("--version", action="version", version=f"switchd {__version__}")
    logging_options = _Parser(add_help=False)
    logging_options.add_argument("-v", "--verbose", action="count", default=0,
                                 help="more log output (-v: INFO, -vv: DEBUG)")
    logging_options.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                                 help="log level (default: INFO for run and sim, WARNING otherwise)")
    logging_options.add_argument("--log-format", choices=["auto", "text", "json"], default="auto",
                                 help="auto (rich on a terminal, one line per record otherwise), text or json")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", parents=[logging_options], help="run the softswitch daemon",
                              description="Run the softswitch: migrate the billing database, start the "
                                          "tree, serve SIP until SIGTERM/SIGINT.")
    run.add_argument("--config", metavar="FILE", type=Path,
                     help="configuration file (default: config/switchd.toml under the current directory)")
    run.set_defaults(handler=_cmd_run, default_level=logging.INFO)

    sim = commands.add_parser("sim", parents=[logging_options], help="simulated phones and gateways",
                              description="Listen on TCP as simulated phones/gateways. Behaviours: "
                                          "answer[:ring=S], hangup[:ring=S,hold=H], busy, "
                                          "reject[:code=N,retry_after=S], noanswer, drop[:after=S].")
    sim.add_argument("--listen", metavar="HOST:PORT", action="append",
                     help=f"address to listen on, repeatable (default {DEFAULT_SIM_LISTEN})")
    sim.add_argument("--default", metavar="SPEC", default=None,
                     help="behaviour for numbers no rule matches (default answer:ring=1)")
    sim.add_argument("--route", metavar="PREFIX=SPEC", action="append", default=[],
                     help="behaviour for dialled numbers starting with PREFIX, repeatable")
    sim.add_argument("--behaviours", metavar="FILE", type=Path,
                     help="TOML file with default = SPEC and a [prefixes] table")
    sim.set_defaults(handler=_cmd_sim, default_level=logging.INFO)

    call = commands.add_parser("call", parents=[logging_options], help="place one call and show its SIP ladder",
                               description="Place one call over TCP and print its SIP ladder and outcome. "
                                           "Exit 0 when a final answer came (any code), 1 otherwise.")
    call.add_argument("caller", metavar="FROM", help="calling number (From user)")
    call.add_argument("callee", metavar="TO", help="dialled number (Request-URI user)")
    call.add_argument("--server", metavar="HOST:PORT", default=DEFAULT_SERVER,
                      help=f"SIP server to call through (default {DEFAULT_SERVER})")
    call.add_argument("--hold", metavar="S", type=_seconds, default=2.0,
                      help="seconds to stay on an answered call before BYE (default 2)")
    call.add_argument("--cancel-after", metavar="S", type=_seconds, default=None,
                      help="CANCEL the call S seconds after the INVITE")
    call.add_argument("--timeout", metavar="S", type=_positive(float), default=32.0,
                      help="give up without a final answer after S seconds (default 32)")
    call.set_defaults(handler=_cmd_call, default_level=logging.WARNING)

    load_ = commands.add_parser("load", parents=[logging_options], help="place many calls at a steady rate",
                                description="Place calls at a steady rate over one TCP connection, then "
                                            "print outcomes by code and setup-latency percentiles.")
    load_.add_argument("--rate", metavar="R", type=_positive(float), required=True, help="calls per second")
    load_.add_argument("--calls", metavar="N", type=_count, required=True, help="how many calls")
    load_.add_argument("--hold", metavar="S", type=_seconds, required=True, help="seconds each answered call lasts")
    load_.add_argument("--server", metavar="HOST:PORT", default=DEFAULT_SERVER,
                       help=f"SIP server to call through (default {DEFAULT_SERVER})")
    load_.add_argument("--from", dest="caller", metavar="NUMBER", default="1000",
                       help="calling number; trailing x's become the call's index (default 1000)")
    load_.add_argument("--to", dest="callee", metavar="NUMBER", default="2000",
                       help="dialled number or prefix; trailing x's become the call's index, e.g. 4420xxxx "
                            "(default 2000)")
    load_.add_argument("--timeout", metavar="S", type=_positive(float), default=32.0,
                       help="per call: give up without a final answer after S seconds (default 32)")
    load_.set_defaults(handler=_cmd_load, default_level=logging.WARNING)

    cdr = commands.add_parser("cdr", parents=[logging_options], help="list call detail records",
                              description="List CDRs from the billing database named in the configuration.")
    cdr.add_argument("--config", metavar="FILE", type=Path,
                     help="configuration file (default: config/switchd.toml under the current directory)")
    cdr.add_argument("--since", metavar="TIME", type=_when, help="setup at or after TIME (ISO 8601; UTC if no zone)")
    cdr.add_argument("--until", metavar="TIME", type=_when, help="setup before TIME")
    cdr.add_argument("--caller", metavar="PREFIX", help="E.164 caller prefix (44 or +44)")
    cdr.add_argument("--callee", metavar="PREFIX", help="E.164 callee prefix")
    cdr.add_argument("--disposition", type=_disposition, help="ANSWERED, BUSY, NO_ANSWER, CANCELLED ...")
    cdr.add_argument("--limit", metavar="N", type=_count, default=None,
                     help="at most N records (table only; default 50)")
    cdr.add_argument("--format", choices=["table", "csv", "json", "xml"], default="table",
                     help="table (default), csv, json (one object per line) or xml")
    cdr.set_defaults(handler=_cmd_cdr, default_level=logging.WARNING)
    return parser


# --- logging ----------------------------------------------------------------------------------------

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


def _level(args: argparse.Namespace) -> int:
    if args.log_level:
        return int(logging.getLevelName(args.log_level))
    default: int = args.default_level
    return max(logging.DEBUG, default - 10 * args.verbose) if args.verbose else default


# --- main ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `switchd` console script; returns the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stdout)
            return 0
        setup_logging(_level(args), fmt=args.log_format)
        code: int = args.handler(args)
        sys.stdout.flush()  # here, so a closed pipe is handled below, not at interpreter exit
        return code
    except BaseExceptionGroup as group:  # raised inside a nursery: report it if it is one user error
        leaves = _leaves(group)
        if len(leaves) == 1 and (known := _user_error(leaves[0])) is not None:
            return _fail(*known)
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
        return _fail(*known)


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
        case ConfigError():
            return f"bad configuration: {exc}", EXIT_USAGE
        case AddressError() | BehaviourError() | BillingError():
            return str(exc), EXIT_USAGE
        case SimError():
            return str(exc), EXIT_FAILURE
        case KeyboardInterrupt():
            return "interrupted", 130
    return None


def _fail(message: str, code: int) -> int:
    Console(stderr=True, highlight=False).print(f"[red]switchd: {escape(message)}[/]", soft_wrap=True)
    return code


PIPE_WIDTH = 200  # columns of output that goes to a file or pipe, so tables are not cut at 80


def _stdout() -> Console:
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, highlight=False, soft_wrap=True, width=width)


# --- run ------------------------------------------------------------------------------------------------


def _load_config(path: Path | None) -> Config:
    return load(path if path is not None else default_config_path())


def _cmd_run(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    from switchd.app import run_daemon  # here, so call/load/cdr do not import the whole daemon

    return run_daemon(config)


# --- sim -------------------------------------------------------------------------------------------------


def _behaviours(args: argparse.Namespace) -> Behaviours:
    table = load_behaviours(args.behaviours) if args.behaviours is not None else Behaviours()
    default = parse_behaviour(args.default) if args.default is not None else table.default
    prefixes = dict(table.prefixes)
    prefixes.update(parse_route(rule) for rule in args.route)
    return Behaviours(default, prefixes)


def _cmd_sim(args: argparse.Namespace) -> int:
    behaviours = _behaviours(args)
    listen = [parse_address(text) for text in (args.listen or [DEFAULT_SIM_LISTEN])]
    trio.run(_serve_sim, listen, behaviours)
    return 0


async def _serve_sim(listen: list[tuple[str, int]], behaviours: Behaviours) -> None:
    console = _stdout()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            sim = await start_sim(nursery, listen, behaviours)
            table = Table(title="switchd sim", show_edge=False)
            table.add_column("dialled prefix")
            table.add_column("behaviour")
            for prefix, behaviour in sorted(behaviours.prefixes.items()):
                table.add_row(escape(prefix) or "(any)", behaviour_spec(behaviour))
            table.add_row("(default)", behaviour_spec(behaviours.default))
            console.print(table)
            addresses = ", ".join(format_address(a) for a in sim.addresses)
            console.print(f"[green]listening on {escape(addresses)}[/] (TCP); Ctrl-C stops")
            async for signum in signals:
                log.info("%s: stopping the simulator", signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel()


# --- call ------------------------------------------------------------------------------------------------


def _cmd_call(args: argparse.Namespace) -> int:
    server = parse_address(args.server, default_port=5060)
    result = trio.run(partial(place_call, server, args.caller, args.callee, hold=args.hold,
                              cancel_after=args.cancel_after, timeout=args.timeout))
    print_ladder(_stdout(), result, format_address(server))
    if result.outcome is Outcome.TRANSPORT_ERROR:
        return _fail(result.error or "connection lost", EXIT_FAILURE)
    return 0 if result.final_status is not None else EXIT_FAILURE


def _style(label: str) -> str:
    code = label.split(" ", 1)[0]
    if not code.isdigit():
        return "cyan"
    return {"1": "yellow", "2": "green"}.get(code[0], "red")


def print_ladder(console: Console, result: CallResult, server: str) -> None:
    """The call's SIP ladder (time, arrow, message) and a one-line outcome."""
    console.print(f"[bold]{escape(result.caller)}[/] → [bold]{escape(result.callee)}[/] via {escape(server)}"
                  f"  [dim]Call-ID {escape(result.call_id)}[/]")
    table = Table(show_header=True, box=None, padding=(0, 1))
    table.add_column("time", justify="right")
    table.add_column(result.caller, justify="center")
    table.add_column("")
    table.add_column(server, justify="center")
    for entry in result.ladder:
        label = f"[{_style(entry.label)}]{escape(entry.label)}[/]"
        arrow = "──────────▶" if entry.direction == "sent" else "◀──────────"
        table.add_row(f"+{entry.at:.3f}s", "│", f"{arrow} {label}", "│")
    console.print(table)
    console.print(outcome_line(result))


def outcome_line(result: CallResult) -> str:
    """One line (rich markup) saying how the call ended."""
    final = f"{result.final_status} {escape(result.final_reason or '')}" if result.final_status else ""
    setup = f", setup {result.setup_latency:.3f}s" if result.setup_latency is not None else ""
    match result.outcome:
        case Outcome.ANSWERED:
            return f"[green]answered[/]: {final}{setup}; {result.hangup_by} hung up"
        case Outcome.CANCELLED:
            return f"[yellow]cancelled[/]: {final}{setup}"
        case Outcome.REJECTED:
            return f"[red]rejected[/]: {final}{setup}"
        case Outcome.TIMEOUT:
            return f"[red]timeout[/]: {escape(result.error or 'no final answer')}"
    return f"[red]transport error[/]: {escape(result.error or 'connection lost')}"


# --- load ------------------------------------------------------------------------------------------------


def _cmd_load(args: argparse.Namespace) -> int:
    server = parse_address(args.server, default_port=5060)
    console = _stdout()
    columns = (TextColumn("calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("calls", total=args.calls)
        report = trio.run(partial(run_load, server, rate=args.rate, calls=args.calls, hold=args.hold,
                                  caller=args.caller, callee=args.callee, timeout=args.timeout,
                                  on_result=lambda _: progress.advance(task)))
    print_load_report(console, report)
    unfinished = sum(1 for r in report.results if r.final_status is None)
    return EXIT_FAILURE if unfinished else 0


def print_load_report(console: Console, report: LoadReport) -> None:
    """Outcomes by code, setup-latency percentiles and the rate achieved."""
    outcomes = Table(title="outcomes", show_edge=False)
    outcomes.add_column("final")
    outcomes.add_column("calls", justify="right")
    outcomes.add_column("share", justify="right")
    total = len(report.results)
    for code, count in sorted(report.outcomes.items()):
        outcomes.add_row(f"[{_style(code)}]{escape(code)}[/]", str(count), f"{100 * count / total:.1f}%")
    console.print(outcomes)
    timing = Table(title="setup latency (INVITE → final)", show_edge=False)
    for name in ("p50", "p95", "p99"):
        timing.add_column(name, justify="right")
    timing.add_row(*(_ms(report.latency(p)) for p in (50, 95, 99)))
    console.print(timing)
    console.print(f"{total} calls in {report.elapsed:.2f}s; {_rate(report.calls_per_second)} calls/s achieved"
                  f" (asked {report.rate:g})")


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def _rate(value: float) -> str:
    return "-" if math.isnan(value) or math.isinf(value) else f"{value:.1f}"


# --- cdr --------------------------------------------------------------------------------------------------

_FORMATS = {"csv": ExportFormat.CSV, "json": ExportFormat.JSONL, "xml": ExportFormat.XML}
DEFAULT_CDR_LIMIT = 50


def _cmd_cdr(args: argparse.Namespace) -> int:
    if args.format != "table" and args.limit is not None:
        raise CliError(f"--limit applies to --format table; a {args.format} export streams every matching "
                       "record (narrow it with --since/--until)", EXIT_USAGE)
    config = _load_config(args.config)
    url = config.database.url
    _check_sqlite_file(url)
    where = CdrFilter(since=args.since, until=args.until, caller_prefix=args.caller, callee_prefix=args.callee,
                      disposition=args.disposition)
    engine = open_engine(url)
    try:
        if args.format == "table":
            with Session(engine) as session:
                page = list_cdrs(session, where, limit=args.limit or DEFAULT_CDR_LIMIT)
                print_cdrs(_stdout(), page.cdrs, more=page.next is not None)
        else:
            export_cdrs(engine, sys.stdout, _FORMATS[args.format], where)
    except SQLAlchemyError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        first = str(exc).splitlines()[0]
        raise CliError(f"cannot read CDRs from {shown}: {first}") from exc
    finally:
        engine.dispose()
    return 0


def _check_sqlite_file(url: str) -> None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        path = Path(url.removeprefix(prefix))
        if not path.exists():
            raise CliError(f"no billing database at {path} (switchd run creates it)")


def print_cdrs(console: Console, cdrs: Sequence[Cdr], *, more: bool) -> None:
    """CDRs as a rich table, oldest first."""
    table = Table(show_edge=False)
    for name, justify in [("setup (UTC)", "left"), ("caller", "left"), ("callee", "left"),
                          ("disposition", "left"), ("code", "right"), ("talk s", "right"),
                          ("billed s", "right"), ("cost", "right"), ("gateway", "left"), ("hangup", "left"), ("call-id", "left")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for cdr in cdrs:
        billable = "" if cdr.billable_ms is None else f"{cdr.billable_ms / 1000:.3f}"
        cost = "" if cdr.cost is None else f"{cdr.cost:f} {cdr.currency or ''}".strip()
        disposition = cdr.disposition.value if cdr.disposition is not None else cdr.status.value
        table.add_row(
            cdr.setup_at.strftime("%Y-%m-%d %H:%M:%S"), escape(cdr.caller or cdr.caller_raw),
            escape(cdr.callee or cdr.callee_raw), disposition, "" if cdr.sip_code is None else str(cdr.sip_code),
            billable, "" if cdr.billed_seconds is None else str(cdr.billed_seconds), cost, escape(cdr.gateway or ""), cdr.hangup_by.value if cdr.hangup_by else "",
            escape(cdr.call_id),
        )
    console.print(table)
    shown = f"{len(cdrs)} CDR{'s' if len(cdrs) != 1 else ''}"
    console.print(f"{shown}; more match: raise --limit or narrow with --since" if more else shown)
