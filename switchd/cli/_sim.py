"""`switchd sim`, `switchd call` and `switchd load`: the simulator's commands (switchd.sim).

    switchd sim  [--listen ADDR]... [--default SPEC] [--route PREFIX=SPEC]... [--behaviours FILE]
    switchd call FROM TO [--server ADDR] [--hold S] [--cancel-after S] [--timeout S]
    switchd load --rate R --calls N --hold S [--server ADDR] [--from NUM] [--to NUM] [--timeout S]
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
from functools import partial
from pathlib import Path

import trio
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from switchd.sim import (
    AddressError,
    Behaviours,
    CallResult,
    LoadReport,
    Outcome,
    behaviour_spec,
    check_user,
    format_address,
    load_behaviours,
    parse_address,
    parse_behaviour,
    parse_route,
    place_call,
    run_load,
    start_sim,
)

from ._common import EXIT_FAILURE, Commands, Parser, count_arg, fail, positive_arg, seconds_arg, stdout
from ._views import sip_style

log = logging.getLogger(__name__)

DEFAULT_SERVER = "127.0.0.1:5060"
DEFAULT_SIM_LISTEN = "127.0.0.1:5070"


def user_arg(text: str) -> str:
    """A SIP user part (a number or a name); trailing x's (load's call index) count as digits."""
    try:
        check_user(text.rstrip("xX") + "0" * (len(text) - len(text.rstrip("xX"))))
    except AddressError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a SIP user part: {str(exc).rpartition(': ')[2]}") from None
    return text


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`sim`, `call` and `load`."""
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
    call.add_argument("caller", metavar="FROM", type=user_arg, help="calling number (From user)")
    call.add_argument("callee", metavar="TO", type=user_arg, help="dialled number (Request-URI user)")
    call.add_argument("--server", metavar="HOST:PORT", default=DEFAULT_SERVER,
                      help=f"SIP server to call through (default {DEFAULT_SERVER})")
    call.add_argument("--hold", metavar="S", type=seconds_arg, default=2.0,
                      help="seconds to stay on an answered call before BYE (default 2)")
    call.add_argument("--cancel-after", metavar="S", type=seconds_arg, default=None,
                      help="CANCEL the call S seconds after the INVITE")
    call.add_argument("--timeout", metavar="S", type=positive_arg(float), default=32.0,
                      help="give up without a final answer after S seconds (default 32)")
    call.set_defaults(handler=_cmd_call, default_level=logging.WARNING)

    load_ = commands.add_parser("load", parents=[logging_options], help="place many calls at a steady rate",
                                description="Place calls at a steady rate over one TCP connection, then "
                                            "print outcomes by code and setup-latency percentiles.")
    load_.add_argument("--rate", metavar="R", type=positive_arg(float), required=True, help="calls per second")
    load_.add_argument("--calls", metavar="N", type=count_arg, required=True, help="how many calls")
    load_.add_argument("--hold", metavar="S", type=seconds_arg, required=True, help="seconds each answered call lasts")
    load_.add_argument("--server", metavar="HOST:PORT", default=DEFAULT_SERVER,
                       help=f"SIP server to call through (default {DEFAULT_SERVER})")
    load_.add_argument("--from", dest="caller", metavar="NUMBER", type=user_arg, default="1000",
                       help="calling number; trailing x's become the call's index (default 1000)")
    load_.add_argument("--to", dest="callee", metavar="NUMBER", type=user_arg, default="2000",
                       help="dialled number or prefix; trailing x's become the call's index, e.g. 4420xxxx "
                            "(default 2000)")
    load_.add_argument("--timeout", metavar="S", type=positive_arg(float), default=32.0,
                       help="per call: give up without a final answer after S seconds (default 32)")
    load_.set_defaults(handler=_cmd_load, default_level=logging.WARNING)


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
    console = stdout()
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
    print_ladder(stdout(), result, format_address(server))
    if result.outcome is Outcome.TRANSPORT_ERROR:
        return fail(result.error or "connection lost", EXIT_FAILURE)
    # A timeout may still carry a final status: the 487 to the CANCEL we sent when we gave up.
    return EXIT_FAILURE if result.outcome is Outcome.TIMEOUT else 0


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
        label = f"[{sip_style(entry.label)}]{escape(entry.label)}[/]"
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
    console = stdout()
    columns = (TextColumn("calls"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("calls", total=args.calls)
        report = trio.run(partial(run_load, server, rate=args.rate, calls=args.calls, hold=args.hold,
                                  caller=args.caller, callee=args.callee, timeout=args.timeout,
                                  on_result=lambda _: progress.advance(task)))
    print_load_report(console, report)
    return EXIT_FAILURE if report.completed < len(report.results) else 0


def print_load_report(console: Console, report: LoadReport) -> None:
    """Outcomes by code, setup-latency percentiles and the rate achieved."""
    outcomes = Table(title="outcomes", show_edge=False)
    outcomes.add_column("final")
    outcomes.add_column("calls", justify="right")
    outcomes.add_column("share", justify="right")
    total = len(report.results)
    for code, count in sorted(report.outcomes.items()):
        outcomes.add_row(f"[{sip_style(code)}]{escape(code)}[/]", str(count), f"{100 * count / total:.1f}%")
    console.print(outcomes)
    timing = Table(title="setup latency (INVITE → final)", show_edge=False)
    for name in ("p50", "p95", "p99"):
        timing.add_column(name, justify="right")
    timing.add_row(*(_ms(report.latency(p)) for p in (50, 95, 99)))
    console.print(timing)
    console.print(f"{total} calls in {report.elapsed:.2f}s: {report.completed} completed, "
                  f"{_rate(report.completed_per_second)} completed calls/s (asked {report.rate:g}, INVITEs sent at "
                  f"{_rate(report.calls_per_second)}/s); {report.timeouts} timeout, {report.remote_ended} "
                  f"remote-ended, {report.unavailable} 503")


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def _rate(value: float) -> str:
    return "-" if math.isnan(value) or math.isinf(value) else f"{value:.1f}"
