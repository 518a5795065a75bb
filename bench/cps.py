"""Calls per second through switchd and through Kamailio, in one run, with the same SIPp load (issue 16).

    bench/cps.sh                         # both ladders over TCP, then the wire latency at a moderate rate
    bench/cps.sh --quick --only switchd  # a smoke run: two low steps of a few calls
    bench/cps.sh --transport u1          # the same ladder over UDP
    bench/cps.sh --transport u1 --kam-udp-workers 1   # ... with one Kamailio UDP worker (replies in order)
    bench/cps.sh --steps 100,200,400 --max-rate 3000 --seconds 10 --workers 2

For each server (switchd first, then Kamailio) it starts the server on 127.0.0.1:5060, climbs the
rate ladder with bench/sipp_cps.sh (SIPp uac -> server -> SIPp uas on 5070; TCP one connection a
side (t1) or UDP (u1); 1 s hold; each step `--seconds` of offered load) and stops at the first step
that is not clean. A step is clean when SIPp saw 0 failed calls, achieved >= 98 % of the offered
rate, and its INVITE -> 200 p95 is <= 50 ms; for switchd also every call of the step has its CDR in
the node's SQLite file, committed and closed (rows counted before and after the step, once it drained).
Then --refine rungs halve the gap between the last clean rate and the first unclean one. The
highest clean rate is the highest clean step. CPU per call is the server's CPU seconds (all its
processes and threads) while the SIPp caller ran (its first INVITE to its last BYE), over the
calls that succeeded.

After the ladders, one more run per server at a moderate rate (min(1,000, switchd's clean rate),
or --wire-rate) is captured with tcpdump (sipp_cps.sh -C): INVITE in -> out and 200 in -> out
inside the server, from the packets' timestamps.

switchd runs from a temp dir with its own configuration: every call to the callee, [limits] cps and
max_calls out of the way, SQLite, the sample rate deck (SIPp dials a rated number), log level
WARNING. Kamailio runs with bench/kam.sh and bench/kamailio.cfg. Everything started is stopped by
PID, also on Ctrl-C or an error. Needs sipp (and tcpdump for the wire figures); uses 127.0.0.1:5060
and :5070, which must be free (a switchd-only run may take others: --ports).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    KIT_PORTS,
    CdrCounts,
    HarnessError,
    Kamailio,
    Ports,
    SwitchdNode,
    load_average,
    machine,
    number,
    ports_free,
    raise_nofile,
    run_sipp,
    stop_on_signals,
    wait_cdrs,
)
from _wire import Wire, call_map, read_legs

LADDER = (25, 50, 100, 200, 300, 400, 600, 800, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000)
QUICK = (10, 20)
MAX_P95_MS = 50.0
MIN_ACHIEVED = 0.98
WIRE_RATE = 1000


@dataclass(frozen=True, slots=True)
class Step:
    """One rung of a ladder: what SIPp saw, the server's CPU, and (switchd) the CDRs."""

    server: str
    rate: float
    calls: int
    ok: int
    failed: int
    achieved: float
    p95_ms: float
    cpu_s: float
    wall_s: float
    cdr_new: int | None  # switchd only: rows added by the step
    cdr_open: int | None  # switchd only: rows still open after the drain
    why: str  # "" when clean, else what was not

    @property
    def clean(self) -> bool:
        return not self.why

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000.0 * self.cpu_s / self.ok if self.ok else math.nan

    def row(self) -> str:
        cdrs = "-" if self.cdr_new is None else f"{self.cdr_new}/{self.cdr_open}"
        return (f"{self.server:<9} {self.rate:>7g} {self.calls:>7} {self.ok:>7} {self.failed:>6} "
                f"{self.achieved:>9.1f} {self.p95_ms:>7g} {self.cpu_ms_per_call:>9.3f} "
                f"{100 * self.cpu_s / self.wall_s if self.wall_s else math.nan:>6.0f}% {cdrs:>11}  "
                f"{'clean' if self.clean else self.why}")


HEADER = (f"{'server':<9} {'offered':>7} {'calls':>7} {'ok':>7} {'failed':>6} {'achieved':>9} {'p95 ms':>7} "
          f"{'CPU ms/call':>9} {'CPU':>7} {'CDRs new/open':>11}  verdict")


def judge(fields: dict[str, str], rate: float, calls: int, cdrs: tuple[int, int] | None) -> tuple[str, int, int]:
    """Why a step is not clean ('' if it is), and SIPp's ok and failed counts."""
    ok, failed = int(number(fields, "ok") or 0), int(number(fields, "failed") or 0)
    achieved, p95 = number(fields, "achieved"), number(fields, "rt_p95")
    faults = []
    if failed or ok < calls:
        faults.append(f"{failed} failed, {ok}/{calls} ok ({fields.get('fail_causes', '-')})")
    if not achieved >= MIN_ACHIEVED * rate:  # also NaN
        faults.append(f"achieved {achieved:g} < {MIN_ACHIEVED:.0%}")
    if not p95 <= MAX_P95_MS:
        faults.append(f"p95 {p95:g} ms > {MAX_P95_MS:g}")
    if cdrs is not None:
        new, still_open = cdrs
        if new != calls or still_open:
            faults.append(f"CDRs: {new} new for {calls} calls, {still_open} open")
    return "; ".join(faults), ok, failed


def step(server: str, target: SwitchdNode | Kamailio, rate: float, seconds: float, hold_ms: int,
         transport: str, ports: Ports, keep: Path | None = None) -> Step:
    """Offer `rate` calls/s for `seconds` through `target`; judge the step. `keep`: SIPp's logs go there."""
    calls = max(2, round(rate * seconds))
    node = target if isinstance(target, SwitchdNode) else None
    before = CdrCounts.read(node.database) if node else None
    outdir = None if keep is None else keep / f"{server}-{transport}-{rate:g}"
    fields = run_sipp(ports=ports, rate=rate, calls=calls, hold_ms=hold_ms, transport=transport, pids=[target.pid],
                      outdir=outdir)
    cdrs = None
    if node is not None and before is not None:
        after = wait_cdrs(node.database, before, calls)
        cdrs = (after.rows - before.rows, after.open)
    cpu = number(fields, "cpu_srv_s")
    why, ok, failed = judge(fields, rate, calls, cdrs)
    return Step(server, rate, calls, ok, failed, number(fields, "achieved"), number(fields, "rt_p95"), cpu,
                number(fields, "wall"), None if cdrs is None else cdrs[0], None if cdrs is None else cdrs[1], why)


@dataclass(frozen=True, slots=True)
class WireRun:
    """Microsecond latencies inside a server at one rate, from a tcpdump capture (bench/_wire.py)."""

    server: str
    rate: float
    wire: Wire
    failed: int

    def line(self) -> str:
        return f"{self.server:<9} at {self.rate:g} cps: {self.wire.summary()}, {self.failed} failed"


@dataclass
class Result:
    server: str
    steps: list[Step]
    wire: WireRun | None = None

    @property
    def clean_rate(self) -> float | None:
        clean = [s.rate for s in self.steps if s.clean]
        return max(clean) if clean else None


def ladder(server: str, target: SwitchdNode | Kamailio, rates: list[float], args: argparse.Namespace) -> list[Step]:
    steps: list[Step] = []
    for rate in rates:
        done = step(server, target, rate, args.seconds, args.hold_ms, args.transport, args.ports, args.keep)
        steps.append(done)
        print(done.row(), flush=True)
        if not done.clean:
            break
    # between the last clean rung and the first one that was not: halve the gap --refine times
    lo = max((s.rate for s in steps if s.clean), default=None)
    hi = steps[-1].rate if steps and not steps[-1].clean else None
    for _ in range(args.refine if lo is not None and hi is not None else 0):
        assert lo is not None and hi is not None
        mid = round((lo + hi) / 2, -1 if hi - lo >= 20 else 0)
        if mid in (lo, hi):
            break
        done = step(server, target, mid, args.seconds, args.hold_ms, args.transport, args.ports, args.keep)
        steps.append(done)
        print(done.row(), flush=True)
        lo, hi = (mid, hi) if done.clean else (lo, mid)
    return steps


def wire(server: str, target: SwitchdNode | Kamailio, rate: float, args: argparse.Namespace,
         tmp: Path) -> WireRun | None:
    """One captured run at `rate`; the latencies inside the server."""
    if shutil.which("tcpdump") is None:
        print(f"{server}: wire latency skipped: tcpdump is not installed (apt-get install tcpdump)", flush=True)
        return None
    calls = max(20, round(rate * args.wire_seconds))
    out = tmp / f"wire-{server}"
    fields = run_sipp(ports=args.ports, rate=rate, calls=calls, hold_ms=args.hold_ms, transport=args.transport,
                      capture=True, outdir=out)
    capture = read_legs(out / "capture.pcap", args.ports.server, args.ports.callee)
    pairs = None
    if isinstance(target, SwitchdNode):  # a B2BUA: pair the legs by the CDRs' Call-IDs
        wait_cdrs(target.database, CdrCounts(0, 0), 0)
        pairs = call_map(target.database)
    result = WireRun(server, rate, Wire.of(capture, pairs), int(number(fields, "failed") or 0))
    shutil.rmtree(out, ignore_errors=True)  # the capture can be large
    print(result.line(), flush=True)
    return result


def run_server(server: str, rates: list[float], wire_rate: float | None, args: argparse.Namespace,
               tmp: Path) -> Result:
    ports_free(args.ports, args.transport)
    target: SwitchdNode | Kamailio
    if server == "switchd":
        target = SwitchdNode(tmp / "switchd", ports=args.ports, transport=args.transport, workers=args.workers)
    else:
        target = Kamailio(tmp / "kamailio", transport=args.transport, udp_workers=args.kam_udp_workers)
    try:
        target.start()
        print(f"-- {server} (pid {target.pid}), {args.transport}, load {load_average()}", flush=True)
        print(HEADER, flush=True)
        result = Result(server, ladder(server, target, rates, args))
        clean = result.clean_rate
        rate = wire_rate if wire_rate is not None else (min(WIRE_RATE, clean) if clean else None)
        if rate and not args.no_wire:
            result.wire = wire(server, target, rate, args, tmp)
        if isinstance(target, SwitchdNode) and target.proc is not None and target.proc.poll() is not None:
            raise HarnessError(f"switchd exited during the run ({target.proc.returncode}):\n{target.log()}")
        return result
    finally:
        target.stop()


def summary(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(f"== summary: {args.transport}, hold {args.hold_ms} ms, {args.seconds:g} s a step, "
          f"{machine()}, load {load_average()}")
    print(HEADER)
    for result in results:
        for done in result.steps:
            print(done.row())
    by = {r.server: r for r in results}
    for result in results:
        clean = result.clean_rate
        best = next((s for s in result.steps if s.rate == clean), None)
        low = result.steps[0] if result.steps else None
        cpu = (f"CPU per call {low.cpu_ms_per_call:.3f} ms at {low.rate:g} cps" if low else "no step") + (
            f", {best.cpu_ms_per_call:.3f} ms at {best.rate:g} cps" if best and best is not low else "")
        print(f"{result.server}: highest clean rate {clean:g} cps; {cpu}" if clean else
              f"{result.server}: no clean step ({cpu})")
    if "switchd" in by and "kamailio" in by:
        s, k = by["switchd"], by["kamailio"]
        if s.clean_rate and k.clean_rate:
            print(f"ratio clean rate switchd/kamailio: {s.clean_rate / k.clean_rate:.3f}x (target >= 0.4x)"
                  + (" (kamailio's ladder ended clean: raise --max-rate)" if all(x.clean for x in k.steps) else ""))
        if s.steps and k.steps:
            s_cpu, k_cpu = _cpu_at(s, k)
            if s_cpu and k_cpu and k_cpu.cpu_ms_per_call > 0:  # 0: below /proc's 10 ms tick over the step
                print(f"ratio CPU per call switchd/kamailio at {s_cpu.rate:g} cps: "
                      f"{s_cpu.cpu_ms_per_call:.3f} / {k_cpu.cpu_ms_per_call:.3f} ms = "
                      f"{s_cpu.cpu_ms_per_call / k_cpu.cpu_ms_per_call:.1f}x")
    for result in results:
        if result.wire is not None:
            print(result.wire.line())


def _cpu_at(s: Result, k: Result) -> tuple[Step | None, Step | None]:
    """The highest rate both ran clean (else the lowest rate both ran): their steps, for a like-for-like ratio."""
    def at(r: Result, rate: float) -> Step | None:
        return next((x for x in r.steps if x.rate == rate), None)
    common = [x.rate for x in s.steps if x.clean and (y := at(k, x.rate)) is not None and y.clean]
    rate = max(common) if common else min(x.rate for x in s.steps)
    return at(s, rate), at(k, rate)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="two low steps of a few calls (a smoke run)")
    p.add_argument("--steps", help="comma-separated rates (calls/s) instead of the default ladder")
    p.add_argument("--refine", type=int, default=1,
                   help="rungs that halve the gap between the last clean rate and the first unclean one (default 1)")
    p.add_argument("--max-rate", type=float, default=10_000, help="stop the ladder above this (default 10000)")
    p.add_argument("--seconds", type=float, help="offered load per step, s (default 8; --quick 2)")
    p.add_argument("--hold-ms", type=int, default=1000, help="call hold, ACK -> BYE (default 1000)")
    p.add_argument("--transport", choices=["t1", "u1"], default="t1", help="TCP one connection a side, or UDP")
    p.add_argument("--workers", type=int, help="run switchd with `run --workers N`")
    p.add_argument("--kam-udp-workers", type=int, metavar="N",
                   help="Kamailio's UDP worker processes with --transport u1 (default 4; 1 relays a call's "
                        "180 and 200 in order, which SIPp's uac needs at high rates)")
    p.add_argument("--only", choices=["switchd", "kamailio"], help="one server only")
    p.add_argument("--wire-rate", type=float, help="rate of the captured run (default min(1000, switchd's clean rate))")
    p.add_argument("--wire-seconds", type=float, help="length of the captured run, s (default 5; --quick 2)")
    p.add_argument("--no-wire", action="store_true", help="skip the captured run")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="keep SIPp's logs and statistics of every step in DIR/<server>-<transport>-<rate>")
    p.add_argument("--ports", default="5060,5070", help="SERVER,CALLEE ports on 127.0.0.1 (default 5060,5070; "
                   "Kamailio's configuration needs those)")
    args = p.parse_args(argv)
    try:
        args.ports = Ports.parse(args.ports)
    except ValueError:
        p.error(f"--ports: two different ports SERVER,CALLEE, not {args.ports!r}")
    if args.ports != KIT_PORTS and args.only != "switchd":
        p.error("--ports other than 5060,5070 need --only switchd (bench/kamailio.cfg is on those)")
    if args.steps:
        try:
            args.rates = sorted(float(x) for x in args.steps.split(","))
        except ValueError:
            p.error(f"--steps: not a list of numbers: {args.steps!r}")
    else:
        args.rates = list(QUICK if args.quick else LADDER)
    args.rates = [r for r in args.rates if 0 < r <= args.max_rate]
    if args.refine < 0:
        p.error("--refine must be >= 0")
    if not args.rates:
        p.error("no step left at or below --max-rate")
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    args.seconds = args.seconds or (2.0 if args.quick else 8.0)
    args.wire_seconds = args.wire_seconds or (2.0 if args.quick else 5.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which("sipp") is None:
        print("cps: sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 2
    raise_nofile()
    stop_on_signals()
    servers = [args.only] if args.only else ["switchd", "kamailio"]
    print(f"cps: {machine()}; load {load_average()}; ladder {', '.join(f'{r:g}' for r in args.rates)} cps")
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="switchd-cps-") as tmp:
            wire_rate = args.wire_rate
            for server in servers:
                result = run_server(server, args.rates, wire_rate, args, Path(tmp))
                results.append(result)
                if wire_rate is None and result.clean_rate:  # both servers captured at the same rate
                    wire_rate = min(WIRE_RATE, result.clean_rate)
    except HarnessError as exc:
        print(f"cps: {exc}", file=sys.stderr)
        if results:
            summary(results, args)
        return 2
    except KeyboardInterrupt:
        print("cps: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    summary(results, args)
    return 0 if all(r.clean_rate for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
