"""What `switchd demo` shows: a live frame while it runs (rich Live on a terminal, plain lines
otherwise) and, at the end, the CDRs, the billing summary, the no-loss check and where the data is.
"""

from __future__ import annotations

from pathlib import Path

import trio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from switchd.otp import TreeNode, tree

from ._scenario import DemoPlan, DemoProgress, DemoReport, run_demo

REFRESH = 0.2
"""Seconds between two frames of the live view."""

_COLLAPSE = 4  # a supervisor with more children than this shows their count, not each of them


async def play(console: Console, workdir: Path, plan: DemoPlan | None = None) -> DemoReport:
    """Run the demo in `workdir`, showing its progress on `console`; print and return its report."""
    plan = plan or DemoPlan()
    progress = DemoProgress(plan)
    report: DemoReport | None = None
    async with trio.open_nursery() as nursery:
        if console.is_terminal:
            with Live(frame(progress), console=console, auto_refresh=False, transient=False) as live:
                nursery.start_soon(_refresh, live, progress)
                report = await run_demo(workdir, plan=plan, progress=progress)
                nursery.cancel_scope.cancel()
                live.update(frame(progress, with_tree=False), refresh=True)
        else:
            nursery.start_soon(_narrate, console, progress)
            report = await run_demo(workdir, plan=plan, progress=progress)
            nursery.cancel_scope.cancel()
    print_report(console, report)
    return report


async def _refresh(live: Live, progress: DemoProgress) -> None:
    while True:
        live.update(frame(progress), refresh=True)
        await trio.sleep(REFRESH)


async def _narrate(console: Console, progress: DemoProgress) -> None:
    """Off a terminal: one line per phase and event, and one frame once every call was placed."""
    phase, seen, framed = "", 0, False
    while True:
        if progress.phase != phase:
            phase = progress.phase
            console.print(f"* {escape(phase)}")
        fresh = min(progress.event_count - seen, len(progress.events))
        for text in list(progress.events)[len(progress.events) - fresh:]:
            console.print(f"  - {escape(text)}")
        seen = progress.event_count
        if not framed and progress.placed == progress.plan.calls and progress.node_up:
            framed = True
            console.print(frame(progress))
        await trio.sleep(REFRESH)


def frame(progress: DemoProgress, *, with_tree: bool = True) -> RenderableType:
    """One frame: counters, calls per second, the outcomes so far, the supervision tree, events."""
    now = trio.current_time()
    plan = progress.plan
    head = Table.grid(padding=(0, 2))
    head.add_row("[bold]switchd demo[/]", escape(progress.phase))
    head.add_row("calls", f"{progress.placed}/{plan.calls} placed, {progress.ended} ended, "
                          f"{progress.placed - progress.ended} in flight")
    head.add_row("CPS", f"{progress.cps(now):.1f} new calls/s (asked {plan.rate:g})")
    outcomes = Table(show_edge=False, box=None, padding=(0, 1))
    outcomes.add_column("outcome")
    outcomes.add_column("calls", justify="right")
    for label, count in sorted(progress.outcomes.items()):
        outcomes.add_row(escape(label), str(count))
    parts: list[RenderableType] = [head, outcomes]
    if with_tree and progress.node_up:
        parts.append(supervision_tree())
    if progress.events:
        parts.append(Group(*(f"[cyan]•[/] {escape(e)}" for e in progress.events)))
    return Group(*parts)


def supervision_tree() -> Tree:
    """The live process tree of this run: the node in full, other roots (carriers, phones) folded."""
    root = Tree("[bold]process tree[/] (restarts, mailbox depth)")
    for node in sorted(tree(), key=lambda n: n.info.name != "switchd"):
        if node.info.name == "switchd":
            _add(root, node)
        elif node.info.kind == "supervisor":
            root.add(f"{escape(_name(node))} [dim]{node.info.kind}, {_count(node)} processes[/]")
    return root


def _add(parent: Tree, node: TreeNode) -> None:
    info = node.info
    restarts = f" [yellow]restarts {info.restarts}[/]" if info.restarts else ""
    mailbox = f" [dim]mailbox {info.mailbox_depth}[/]" if info.mailbox_depth else ""
    branch = parent.add(f"{escape(_name(node))} [dim]{info.kind}[/]{restarts}{mailbox}")
    if len(node.children) > _COLLAPSE and len({c.info.kind for c in node.children}) == 1:
        branch.add(f"[dim]{len(node.children)} × {escape(node.children[0].info.kind)} "
                   f"({escape(node.children[0].info.child_id or '')} …)[/]")
        return
    for child in node.children:
        _add(branch, child)


def _name(node: TreeNode) -> str:
    return node.info.name or node.info.child_id or str(node.info.pid)


def _count(node: TreeNode) -> int:
    return 1 + sum(_count(child) for child in node.children)


def print_report(console: Console, report: DemoReport) -> None:
    """The CDR table, the billing summary, the no-loss check and where the data is."""
    cdrs = Table(title="CDRs (one per call placed; costs in USD)", show_edge=False)
    for name, justify in (("callee", "left"), ("disposition", "left"), ("code", "right"), ("billed s", "right"),
                          ("cost", "right"), ("gateway", "left"), ("hangup", "left")):
        cdrs.add_column(name, justify=justify)  # type: ignore[arg-type]
    for line in report.cdrs:
        killed = " [red](killed)[/]" if line.call_id == report.killed_call else ""
        cdrs.add_row(escape(line.callee), line.disposition + killed,
                     "" if line.sip_code is None else str(line.sip_code),
                     "" if line.billed_seconds is None else str(line.billed_seconds),
                     line.cost.removesuffix(" USD"), escape(line.gateway), escape(line.hangup))
    console.print(cdrs)
    summary = Table(title="billing summary", show_edge=False)
    for name in ("by", "calls", "answered", "ASR", "ACD s", "billed min", "cost"):
        summary.add_column(name, justify="left" if name == "by" else "right")
    for row in (*report.summary, *report.destinations):
        summary.add_row(escape(row.key or "(unrated)"), str(row.calls), str(row.answered), f"{row.asr:.0%}",
                        f"{row.acd:.1f}", f"{row.billed_seconds / 60:.2f}",
                        f"{row.cost:f} {row.currency or ''}".strip())
    console.print(summary)
    placed = len(report.results)
    verdict = "[green]no CDR lost[/]" if report.ok else "[red]CHECK FAILED[/]"
    console.print(f"{placed} calls placed, {len(report.cdrs)} CDRs, {len(report.missing)} missing, "
                  f"{report.left_open} left open; router restarted {report.router_restarts}×, policy "
                  f"{report.policy_before} -> {report.policy_after}: {verdict} ({report.elapsed:.1f}s)")
    console.print(f"data: {escape(str(report.workdir))}\n"
                  f"  database  {escape(report.database_url)}\n"
                  f"  config    {escape(str(report.config_path))}\n"
                  f"  read it   switchd cdr --config {escape(str(report.config_path))}")
