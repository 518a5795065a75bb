"""`switchd status` (one shot) and `switchd top` (a live view, like observer or top), over the API.

    switchd status [--json] [--config FILE] [--api URL]
    switchd top    [--interval S] [--calls N] [--once | --frames N] [--config FILE] [--api URL]

Both read GET /status and GET /tree; top also GET /calls. A frame is built by `status_view` /
`top_frame` from the answers alone (no I/O), so a test renders one and reads it as text.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Sequence

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ._client import ApiClient, DaemonUnreachable, JsonObject
from ._common import Commands, Parser, count_arg, positive_arg, stdout
from ._connect import api_client, api_options
from ._views import (
    ProcessView,
    child,
    children,
    counts,
    duration,
    flag,
    integer,
    millis,
    number,
    process_count,
    rate,
    read_tree,
    text,
)

DEFAULT_INTERVAL = 1.0
DEFAULT_TOP_CALLS = 10


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`status` and `top`."""
    options = api_options()
    status = commands.add_parser("status", parents=[logging_options, options],
                                 help="the running node at a glance",
                                 description="One look at the running daemon: its tree, active calls, calls per "
                                             "second, setup latency, restarts and billing database state.")
    status.add_argument("--json", action="store_true", help="the status as one JSON object (with the tree)")
    status.set_defaults(handler=_cmd_status, default_level=logging.WARNING)

    top = commands.add_parser("top", parents=[logging_options, options], help="live view of the running node",
                              description="The supervision tree with mailbox depths and restart counts, active "
                                          "calls, calls per second and setup latency, refreshed every second. "
                                          "q or Ctrl-C quits.")
    top.add_argument("--interval", metavar="S", type=positive_arg(float), default=DEFAULT_INTERVAL,
                     help=f"seconds between refreshes (default {DEFAULT_INTERVAL:g})")
    top.add_argument("--calls", metavar="N", type=count_arg, default=DEFAULT_TOP_CALLS,
                     help=f"active calls listed (default {DEFAULT_TOP_CALLS})")
    frames = top.add_mutually_exclusive_group()
    frames.add_argument("--once", dest="frames", action="store_const", const=1,
                        help="print one frame and exit (for a script or a test)")
    frames.add_argument("--frames", metavar="N", type=count_arg,
                        help="print N frames, one per interval, and exit")
    top.set_defaults(handler=_cmd_top, default_level=logging.WARNING)


# --- status ------------------------------------------------------------------------------------------------


def _cmd_status(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        status = client.get("/status")
        tree = client.get("/tree")
    if args.json:
        print(json.dumps({**status, "tree": tree.get("processes", [])}, indent=2, ensure_ascii=False))
        return 0
    stdout().print(status_view(status, tree, api=client.url))
    return 0


def status_view(status: JsonObject, tree: JsonObject, *, api: str) -> Group:
    """What `switchd status` prints: the summary, then the application's top-level processes."""
    roots = read_tree(tree)
    return Group(_summary(status, roots, api), _process_table(roots, depth=1))


def _summary(status: JsonObject, roots: Sequence[ProcessView], api: str) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    calls, latency = child(status, "calls"), child(status, "setup_latency")
    state = "[yellow]draining[/]" if flag(status, "draining") else "[green]running[/]"
    grid.add_row("node",
                 f"{escape(text(status, 'node') or '?')}  {state}, up {duration(number(status, 'uptime'))}"
                         f"  [dim]{escape(api)}[/]")
    grid.add_row("calls",
                 f"{integer(calls, 'active')} active   {rate(number(calls, 'cps_10s'))} cps (10 s)   "
                          f"{rate(number(calls, 'cps_1m'))} cps (1 min)")
    grid.add_row("setup", "   ".join(f"{p} {millis(number(latency, p))}" for p in ("p50", "p95", "p99")))
    grid.add_row("billing", _billing(child(status, "billing")))
    grid.add_row("restarts", _named_counts(counts(status, "restarts"), none="none"))
    grid.add_row("rejected", _named_counts(counts(status, "rejections"), none="none"))
    grid.add_row("tree", f"{process_count(roots)} processes")
    return grid


def _billing(billing: JsonObject) -> str:
    queued, spooled, quarantined = (integer(billing, k) for k in ("queue_depth", "spooled", "quarantined"))
    tail = f"{queued} CDR steps queued, {spooled} spooled, {quarantined} quarantined"
    if not flag(billing, "connected") or flag(billing, "spooling"):
        return f"[red]database unavailable: CDRs go to the spool[/]; {tail}"
    return f"[green]database connected[/]; {tail}"


def _named_counts(found: dict[str, int], *, none: str) -> str:
    shown = [f"{escape(name)} {n}" for name, n in sorted(found.items()) if n]
    return ", ".join(shown) if shown else none


def _process_table(roots: Sequence[ProcessView], *, depth: int | None) -> Table:
    """The processes as an indented tree table, `depth` levels below the roots (None: all)."""
    table = Table(show_edge=False, pad_edge=False)
    for name, justify in (("process", "left"), ("pid", "left"), ("kind", "left"), ("status", "left"),
                          ("mailbox", "right"), ("restarts", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for root in roots:
        for prefix, process in _indented(root, "", "", depth):
            mailbox = f"[yellow]{process.mailbox}[/]" if process.mailbox else "0"
            restarts = f"[red]{process.restarts}[/]" if process.restarts else "0"
            status = escape(process.status)
            if process.calls is not None:
                status += f" ({process.calls} call{'s' if process.calls != 1 else ''})"
            table.add_row(f"{prefix}{escape(process.label)}", escape(process.pid), escape(process.kind), status,
                          mailbox, restarts)
    return table


def _indented(process: ProcessView, prefix: str, below: str,
              depth: int | None) -> Iterator[tuple[str, ProcessView]]:
    yield prefix, process
    if (depth is not None and depth <= 0) or process.calls is not None:  # call sessions: the calls table
        return
    kids = process.children
    for i, kid in enumerate(kids):
        last = i == len(kids) - 1
        yield from _indented(kid, below + ("└─ " if last else "├─ "), below + ("   " if last else "│  "),
                             None if depth is None else depth - 1)


# --- top ----------------------------------------------------------------------------------------------------


def top_frame(status: JsonObject, tree: JsonObject, calls: JsonObject, *, api: str,
              error: str | None = None) -> Group:
    """One frame of `switchd top`: summary, the whole tree, the active calls; `error` above them."""
    roots = read_tree(tree)
    parts: list[RenderableType] = []
    if error is not None:
        parts.append(Text(f"no answer from {api}: {error}; showing the last answer", style="red"))
    parts += [_summary(status, roots, api), _process_table(roots, depth=None), _calls_table(calls)]
    parts.append(Text(f"{time.strftime('%H:%M:%S')}  q or Ctrl-C quits", style="dim"))
    return Group(*parts)


def _calls_table(body: JsonObject) -> Table:
    table = Table(title="active calls", show_edge=False, pad_edge=False, title_justify="left")
    for name, justify in (("call-id", "left"), ("state", "left"), ("caller", "left"), ("callee", "left"),
                          ("gateway", "left"), ("duration", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for call in children(body, "calls"):
        cells = (escape(text(call, k) or "") for k in ("call_id", "state", "caller", "callee", "gateway"))
        table.add_row(*cells, duration(number(call, "duration")))
    return table


def _cmd_top(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        answers = _fetch(client, args.calls)  # a daemon that does not answer at first: one red line
        if args.frames is not None:
            console = stdout()
            for n in range(args.frames):
                if n:
                    time.sleep(args.interval)
                    answers = _fetch(client, args.calls)
                console.print(top_frame(*answers, api=client.url))
            return 0
        _live(client, answers, args)
    return 0


def _fetch(client: ApiClient, calls: int) -> tuple[JsonObject, JsonObject, JsonObject]:
    return client.get("/status"), client.get("/tree"), client.get("/calls", limit=calls)


def _live(client: ApiClient, answers: tuple[JsonObject, JsonObject, JsonObject],
          args: argparse.Namespace) -> None:
    """Refresh until q or Ctrl-C; a lost daemon is shown in the frame, and asked again each interval."""
    url = client.url
    console = Console()
    with _keys() as pressed, Live(top_frame(*answers, api=url), console=console, screen=console.is_terminal,
                                  auto_refresh=False) as live:
        try:
            while pressed(args.interval) != "q":
                error = None
                try:
                    answers = _fetch(client, args.calls)
                except DaemonUnreachable as exc:
                    error = str(exc)
                live.update(top_frame(*answers, api=url, error=error), refresh=True)
        except KeyboardInterrupt:  # Ctrl-C is how top is left: not an error
            pass


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str | None]]:
    """A function waiting up to S seconds for a key on the terminal (None: none came).

    The terminal is put in cbreak mode (keys arrive without Enter, ^C still interrupts) and put
    back as it was on the way out; without a terminal on stdin it only waits.
    """
    if not sys.stdin.isatty():
        yield _no_keys
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield _KeyWait(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class _KeyWait:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __call__(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self._fd], [], [], timeout)
        return os.read(self._fd, 1).decode(errors="replace").lower() if ready else None


def _no_keys(timeout: float) -> str | None:
    time.sleep(timeout)  # nothing to read: the refresh interval is the whole wait
    return None
