"""`switchd chaos`: kill processes of the running node on purpose, watch it heal, check no CDR was lost.

    switchd chaos --kill call|router|billing|events [--count N] [--wait S] [--json]

Only when the node allows it (`[api] chaos = true`; the API answers 403 otherwise). The steps:

1. note the calls in progress and the tree (GET /calls, GET /tree);
2. POST /chaos: the node kills N processes of the kind and says which;
3. wait for each killed server to be back under a new pid (a call session is temporary: it is not
   restarted — its terminate hangs up both legs and closes its CDR);
4. check through the API that every call in progress at the kill has its CDR (GET /cdrs/{call_id}),
   and that the CDR of every killed call is closed — waiting up to --wait seconds, since CDR steps
   reach the database through the node's queue.

Exit 0 when every CDR is there, 1 when one is missing (listed) or a server did not come back.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from rich.markup import escape
from rich.table import Table

from switchd.switch import a_leg_call_id

from ._client import ApiClient, ApiRefusal, JsonObject, call_path
from ._common import EXIT_FAILURE, EXIT_USAGE, CliError, Commands, Parser, count_arg, positive_arg, stdout
from ._connect import api_client, api_options
from ._views import ProcessView, children, read_tree, text

TARGETS = ("call", "router", "billing", "events")
DEFAULT_WAIT = 15.0
POLL = 0.2  # seconds between two looks at the node while waiting for it to heal
CALLS_NOTED = 1000


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`chaos`."""
    chaos = commands.add_parser("chaos", parents=[logging_options, api_options()],
                                help="kill processes on purpose; check that no CDR went missing",
                                description="Kill processes of the running node (only with [api] chaos = true), "
                                            "show the tree restart them, then check through the API that every "
                                            "call in progress at the kill has its CDR.")
    chaos.add_argument("--kill", required=True, choices=TARGETS,
                       help="a call session, the router, the billing store or the event manager")
    chaos.add_argument("--count", metavar="N", type=count_arg, default=1, help="how many to kill (default 1)")
    chaos.add_argument("--wait", metavar="S", type=positive_arg(float), default=DEFAULT_WAIT,
                       help=f"seconds to wait for restarts and CDRs (default {DEFAULT_WAIT:g})")
    chaos.add_argument("--json", action="store_true", help="the report as JSON")
    chaos.set_defaults(handler=_cmd_chaos, default_level=logging.WARNING)


@dataclass(slots=True)
class Kill:
    """One killed process, and what became of it."""

    name: str
    pid: str
    call_id: str | None = None  # a call session's Call-ID
    restarted_as: str | None = None  # a server's new pid; None: not (yet) back
    restarts: int | None = None


@dataclass(slots=True)
class Report:
    """What `switchd chaos` did and found."""

    target: str
    killed: list[Kill] = field(default_factory=list)
    calls: int = 0  # calls checked: those in progress at the kill, and the calls killed
    missing: list[str] = field(default_factory=list)  # Call-IDs without a CDR
    open: list[str] = field(default_factory=list)  # killed calls whose CDR is still open
    not_back: list[str] = field(default_factory=list)  # killed servers not restarted within --wait

    @property
    def ok(self) -> bool:
        return not (self.missing or self.open or self.not_back)


def _cmd_chaos(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        calls = children(client.get("/calls", limit=CALLS_NOTED), "calls")
        report = Report(args.kill)
        try:
            answer = client.post("/chaos", {"kill": args.kill, "count": args.count})
        except ApiRefusal as exc:
            if exc.status == 403:
                raise CliError("chaos is off on this node: set [api] chaos = true in its configuration and "
                               "restart it", EXIT_USAGE) from exc
            raise
        deadline = time.monotonic() + args.wait
        by_pid = {text(c, "pid"): text(c, "call_id") for c in calls}
        for victim in children(answer, "killed"):
            pid, name = text(victim, "pid") or "?", text(victim, "name") or "?"
            report.killed.append(Kill(name, pid, call_id=by_pid.get(pid) or _call_id_in(name)))
        if args.kill != "call":
            _await_restarts(client, report, deadline)
        _check_cdrs(client, report, [text(c, "call_id") or "" for c in calls], deadline)
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=2, ensure_ascii=False))
    else:
        _print(report)
    if not report.ok:
        raise CliError(_failure(report), EXIT_FAILURE)
    return 0


def _call_id_in(name: str) -> str | None:
    """The Call-ID in a call session's name: its registered name (`switchd.switch.a_leg_name`), or its
    child id ('call:<call-id>') or 'call <call-id>', if it is one."""
    call_id = a_leg_call_id(name)
    if call_id is not None:
        return call_id
    for prefix in ("call:", "call "):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return None


def _until(deadline: float, done: Callable[[], bool]) -> bool:
    """Ask `done` every POLL seconds until it says yes or `deadline` passes; its last answer."""
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)  # the node is another process: asking again is the only way to learn
    return True


def _await_restarts(client: ApiClient, report: Report, deadline: float) -> None:
    def all_back() -> bool:
        processes = [p for root in read_tree(client.get("/tree")) for p in root.walk()]
        for kill in report.killed:
            found = _named(processes, kill.name)
            if found is not None and found.pid != kill.pid:
                kill.restarted_as, kill.restarts = found.pid, found.restarts
        return all(k.restarted_as is not None for k in report.killed)

    if not _until(deadline, all_back):
        report.not_back = [k.name for k in report.killed if k.restarted_as is None]


def _named(processes: list[ProcessView], name: str) -> ProcessView | None:
    return next((p for p in processes if name in (p.name, p.child_id)), None)


def _check_cdrs(client: ApiClient, report: Report, call_ids: list[str], deadline: float) -> None:
    killed = {k.call_id for k in report.killed if k.call_id}
    waiting = {call_id for call_id in call_ids if call_id} | killed
    report.calls = len(waiting)

    def all_there() -> bool:
        for call_id in sorted(waiting):
            cdrs = _cdrs(client, call_id)
            if cdrs and (call_id not in killed or all(text(c, "status") != "open" for c in cdrs)):
                waiting.discard(call_id)
        return not waiting

    if not _until(deadline, all_there):
        report.open = sorted(c for c in waiting if c in killed and _cdrs(client, c))
        report.missing = sorted(waiting - set(report.open))


def _cdrs(client: ApiClient, call_id: str) -> list[JsonObject]:
    try:
        return children(client.get(call_path("/cdrs", call_id)), "cdrs")
    except ApiRefusal as exc:
        if exc.status == 404:
            return []
        raise


def _print(report: Report) -> None:
    console = stdout()
    table = Table(title=f"killed ({report.target})", show_edge=False, pad_edge=False, title_justify="left")
    for name in ("process", "pid", "now"):
        table.add_column(name)
    for kill in report.killed:
        if kill.call_id is not None or report.target == "call":
            now = "not restarted (temporary): legs hung up, CDR closed as crashed"
        elif kill.restarted_as is not None:
            now = f"[green]restarted as {escape(kill.restarted_as)}[/] (restarts {kill.restarts})"
        else:
            now = "[red]not back[/]"
        table.add_row(escape(kill.name), escape(kill.pid), now)
    console.print(table)
    if not report.killed:
        console.print("nothing to kill (no process of that kind)")
    found = report.calls - len(report.missing)
    hint = "" if report.calls else " (place calls first, e.g. `switchd load`, to check CDRs under load)"
    console.print(f"calls in progress at the kill: {report.calls}; with their CDR: {found}{hint}")
    if report.ok:
        console.print("[green]no CDR missing[/]")


def _failure(report: Report) -> str:
    parts = []
    if report.missing:
        parts.append(f"no CDR for {len(report.missing)} call(s): {', '.join(report.missing[:5])}"
                     + (" …" if len(report.missing) > 5 else ""))
    if report.open:
        parts.append(f"the CDR of killed call(s) {', '.join(report.open[:5])} is still open")
    if report.not_back:
        parts.append(f"not restarted within the wait: {', '.join(report.not_back)}")
    return "; ".join(parts)
