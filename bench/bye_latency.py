"""What answering a BYE only once its CDR close is durable costs: BYE -> 200 at the caller.

    python bench/bye_latency.py [--rate 30] [--calls 300] [--hold-ms 1000] [--baseline REV]

SIPp `uac` (TCP, -trace_msg) -> `python -m switchd run` (SQLite in a temp dir) -> SIPp `uas`, on
127.0.0.1. From the caller's message trace, per call: INVITE -> 180 (setup) and BYE -> 200 (what
the caller waits for its hang-up to be confirmed), printed as p50/p95/p99/max in ms.

With `--baseline REV` the same load runs, in the same invocation, through switchd as it was at the
git revision REV (checked out into a temporary worktree, removed afterwards), and the ratios
this/baseline are printed. Every process it starts is stopped by its PID; needs sipp.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration._daemon import GatewaySpec, Switchd, write_config
from tests.integration._sipp import SippCallee, SippCaller, free_tcp_port
from tests.integration._traces import read_trace


@dataclass(frozen=True, slots=True)
class Figures:
    """Latencies of one run, in ms, and how many calls they come from."""

    label: str
    calls: int
    setup: list[float]
    bye: list[float]

    def line(self) -> str:
        return f"{self.label:<10} calls={self.calls:<5} setup {_summary(self.setup)}   bye->200 {_summary(self.bye)}"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _summary(values: list[float]) -> str:
    return " ".join(f"{name}={_pct(values, q):6.2f}" for name, q in
                    (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)))


def measure(tree: Path, label: str, workdir: Path, *, rate: float, calls: int, hold_ms: int) -> Figures:
    """Run the load through switchd from source tree `tree`; the caller's latencies."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("bye_latency: sipp is not installed (Debian package sip-tester)")
    workdir.mkdir(parents=True)
    callee = SippCallee(Path(sipp), workdir, port=free_tcp_port(), timeout_s=600)
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)  # the daemon child imports switchd from `tree`
    try:
        cfg = write_config(workdir / "node", [GatewaySpec("gw1", callee.port)])
        node = Switchd(cfg, workdir / "switchd.stderr").start()
        try:
            caller = SippCaller(Path(sipp), workdir, node.target, calls=calls, rate=rate, hold_ms=hold_ms,
                                timeout_s=calls // max(1, int(rate)) + 120)
            code = caller.wait()
            if code != 0:
                raise SystemExit(f"bye_latency: {label}: SIPp caller exited {code} ({caller.stats()})")
        finally:
            node.stop(timeout=30.0)
    finally:
        callee.stop()
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before
    views = read_trace([caller.trace_path]).values()
    setup = [v.setup_latency * 1000 for v in views if v.setup_latency is not None]
    bye = [(v.bye_answered_at - v.bye_sent_at) * 1000 for v in views
           if v.bye_sent_at is not None and v.bye_answered_at is not None]
    return Figures(label, len(views), setup, bye)


@contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A temporary git worktree of `rev`, removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="switchd-baseline-"))
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), rev], check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=30.0, help="calls per second (default 30)")
    parser.add_argument("--calls", type=int, default=300, help="calls per run (default 300)")
    parser.add_argument("--hold-ms", type=int, default=1000, help="ACK -> BYE in ms (default 1000)")
    parser.add_argument("--baseline", metavar="REV", help="also measure git revision REV, for ratios")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="switchd-bye-") as tmp:
        runs = [measure(REPO, "this", Path(tmp) / "this", rate=args.rate, calls=args.calls, hold_ms=args.hold_ms)]
        if args.baseline:
            with checkout(args.baseline) as tree:
                runs.append(measure(tree, args.baseline[:10], Path(tmp) / "baseline", rate=args.rate,
                                    calls=args.calls, hold_ms=args.hold_ms))
    print(f"rate={args.rate:g} cps, {args.calls} calls, hold {args.hold_ms} ms, TCP, SQLite; latencies in ms")
    for run in runs:
        print(run.line())
    if len(runs) == 2:
        this, base = runs
        for name in ("setup", "bye"):
            a, b = getattr(this, name), getattr(base, name)
            print(f"ratio {name}: p50 {statistics.median(a) / statistics.median(b):.2f}x, "
                  f"p99 {_pct(a, 0.99) / _pct(b, 0.99):.2f}x (this / {base.label})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
