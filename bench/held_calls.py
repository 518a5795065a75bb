"""Many concurrent established calls on one switchd node: memory per call, OPTIONS latency, memory after (issue 16).

    python bench/held_calls.py                        # 50,000 calls at 300 cps (about 7 minutes)
    python bench/held_calls.py --calls 5000 --rate 200

switchd runs from a temp dir (SQLite, the sample rate deck, log level WARNING, [limits] max_calls
above --calls and cps out of the way). A short warm-up (--warmup calls) runs first, so the idle
figure includes what the first calls allocate once. Then SIPp (bench/sipp_cps.sh, TCP one
connection a side, sipp -l --calls) sets up --calls calls at --rate and holds each until all of
them are up plus --plateau seconds. While they are all up (the node's /status says so) it reads
the node's VmRSS and probes it with OPTIONS on a raw TCP connection (--probes samples, one every
5 ms; each must be answered 200 within 1 s): p50/p99/max. After every call ended and every CDR
is closed, it reads VmRSS again (was the memory returned?).

Printed: RSS idle, with all calls up, per call above idle (target <= 16 KiB), OPTIONS p50/p99
(target < 10 ms), SIPp's failed calls (target 0), CDRs, and RSS after; every 5 s while they are
set up, the node's CPU per call set up in those 5 s (does a call cost more with more calls up?)
and, with --gc-probe, the seconds CPython's collector took in them. Uses 127.0.0.1:5060 and :5070
unless --ports says others; --repo runs
another checkout's switchd (compare two versions in one session). Needs sipp; stops what it
starts by PID.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    REPO,
    CdrCounts,
    HarnessError,
    Ports,
    SwitchdNode,
    cpu_seconds,
    load_average,
    machine,
    number,
    ports_free,
    raise_nofile,
    rss_kib,
    run_in_tempdir,
    run_sipp,
    sipp_result,
    start_sipp,
    stop_on_signals,
    stop_sipp,
    wait_cdrs,
)
from _wire import pct

OPTIONS = ("OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
           "Via: SIP/2.0/TCP 127.0.0.1:{local};branch=z9hG4bK-probe-{n}\r\n"
           "From: <sip:probe@127.0.0.1>;tag=probe{n}\r\nTo: <sip:ping@127.0.0.1>\r\n"
           "Call-ID: probe-{n}@bench\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def probe(port: int, samples: int, interval: float = 0.005, timeout: float = 1.0) -> tuple[list[float], int]:
    """OPTIONS -> 200 round trips on one TCP connection to the node's `port`, in ms; and how many failed."""
    rtts: list[float] = []
    failed = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        local = sock.getsockname()[1]
        buffer = b""
        for n in range(samples):
            started = time.perf_counter()
            sock.sendall(OPTIONS.format(port=port, local=local, n=n).encode())
            try:
                while b"\r\n\r\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise HarnessError("the node closed the probe's connection")
                    buffer += chunk
            except TimeoutError:
                failed += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000
            head, _, buffer = buffer.partition(b"\r\n\r\n")  # an OPTIONS 200 without a body (Content-Length: 0)
            if head.startswith(b"SIP/2.0 200") and f"probe-{n}@bench".encode() in head:
                rtts.append(elapsed)
            else:
                failed += 1
            time.sleep(interval)
    return rtts, failed


def active_calls(api_port: int) -> int | None:
    """Calls in flight as the node's /status says; None when it did not answer within 10 s (overloaded)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/status", timeout=10) as reply:
            return int(json.load(reply)["calls"]["active"])
    except OSError:
        return None


def sipp_failed(stat_csv: Path) -> tuple[int, str]:
    """FailedCall(C) in the last row SIPp's caller wrote to its statistics file so far, and the causes."""
    try:
        with stat_csv.open(encoding="latin-1") as fh:
            rows = [r for r in csv.reader(fh, delimiter=";") if r]
    except OSError:
        return 0, ""
    if len(rows) < 2:
        return 0, ""
    last = dict(zip(rows[0], rows[-1], strict=False))
    causes = ", ".join(f"{k[6:-3]} {v}" for k, v in last.items()
                       if k.startswith("Failed") and k.endswith("(C)") and k != "FailedCall(C)" and v not in ("", "0"))
    return int(last.get("FailedCall(C)", 0)), causes


def gc_seconds(path: Path | None) -> tuple[float, int]:
    """Seconds the node's collector took so far, and its full (generation 2) collections; (0, 0) without --gc-probe."""
    if path is None:
        return 0.0, 0
    try:
        stats = json.loads(path.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return 0.0, 0
    return float(sum(stats["seconds"])), int(stats["collections"][2])


def snapshot(stats: Path | None, name: str, timeout: float = 120.0) -> tracemalloc.Snapshot | None:
    """The node's tracemalloc snapshot now (--tracemalloc: bench/_gc_probe.py writes it when asked), else None."""
    if stats is None:
        return None
    done = stats.parent / f"{stats.name}.{name}"
    (stats.parent / f"{stats.name}.snap-{name}").touch()
    deadline = time.monotonic() + timeout
    while not done.exists() or (stats.parent / f"{stats.name}.snap-{name}").exists():
        if time.monotonic() > deadline:
            raise HarnessError(f"the node wrote no tracemalloc snapshot {name!r} in {timeout:g} s")
        time.sleep(0.5)
    return tracemalloc.Snapshot.load(str(done))


def print_growth(before: tracemalloc.Snapshot | None, after: tracemalloc.Snapshot | None, calls: int,
                 top: int = 60) -> None:
    """Bytes of live Python objects per call that `after` holds above `before`, by where they were allocated."""
    if before is None or after is None or calls <= 0:
        return
    diff = after.compare_to(before, "lineno")
    total = sum(d.size_diff for d in diff)
    print(f"tracemalloc: {total / calls:,.0f} B of Python objects a call above idle ({calls} calls); "
          f"largest sources (B a call, objects a call):")
    for d in diff[:top]:
        frame = d.traceback[0]
        print(f"  {d.size_diff / calls:8,.0f} {d.count_diff / calls:7.2f}  {frame.filename.rsplit('/switchd/', 1)[-1]}:"
              f"{frame.lineno}")


def malloc_trim(pid: int) -> int | None:
    """RSS of `pid` in KiB after gdb made it call glibc's malloc_trim(0) (None without gdb): how much of what
    it kept after the calls ended was free memory glibc had not handed back, rather than live or pymalloc's."""
    if shutil.which("gdb") is None:
        return None
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"], capture_output=True,
                   timeout=60, check=False)
    time.sleep(1)
    return rss_kib(pid)


def run(args: argparse.Namespace, tmp: Path) -> bool:
    ramp = args.calls / args.rate
    hold_ms = round((ramp + args.plateau) * 1000)
    ports: Ports = args.ports
    ports_free(ports, "t1")
    gc_stats = tmp / "gc.json" if args.gc_probe or args.tracemalloc else None
    traced = gc_stats if args.tracemalloc else None
    node = SwitchdNode(tmp / "switchd", ports=ports, max_calls=args.calls + 1000, repo=args.repo, gc_stats=gc_stats)
    node.start()
    sipp = None
    try:
        print(f"held_calls: {machine()}; load {load_average()}; switchd pid {node.pid}; {args.calls} calls at "
              f"{args.rate:g} cps (ramp {ramp:.0f} s), each held {hold_ms / 1000:.0f} s, TCP; ports {ports.server},"
              f"{ports.callee}; switchd from {args.repo}", flush=True)
        if args.warmup:
            warm = run_sipp(ports=ports, rate=min(args.rate, 100.0), calls=args.warmup, hold_ms=0, transport="t1")
            print(f"warm-up: {warm.get('ok')} ok, {warm.get('failed')} failed", flush=True)
        wait_cdrs(node.database, CdrCounts(0, 0), args.warmup)
        time.sleep(2)
        idle = rss_kib(node.pid)
        snap_idle = snapshot(traced, "idle")
        if gc_stats is not None:
            reset = gc_stats.parent / f"{gc_stats.name}.reset"
            reset.touch()  # the collector's figures from idle on: bench/_gc_probe.py zeroes them, then removes it
            while reset.exists() and node.proc is not None and node.proc.poll() is None:
                time.sleep(0.2)
            time.sleep(1.2)  # and has written the zeroed figures
        before = CdrCounts.read(node.database)
        print(f"RSS idle {idle / 1024:.1f} MiB; load {load_average()}", flush=True)
        sipp = start_sipp(ports=ports, rate=args.rate, calls=args.calls, hold_ms=hold_ms, transport="t1",
                          limit=args.calls, pids=[node.pid], outdir=tmp / "sipp")
        deadline = time.monotonic() + ramp + args.plateau / 2
        active = 0
        cpu_then, gc_then = cpu_seconds([node.pid]), gc_seconds(gc_stats)
        while time.monotonic() < deadline and sipp.poll() is None:
            time.sleep(5)
            now = active_calls(node.api_port)
            cpu_now, gc_now = cpu_seconds([node.pid]), gc_seconds(gc_stats)
            new_calls = (now or active) - active
            active = active if now is None else now
            failed_so_far, causes = sipp_failed(tmp / "sipp" / "uac_stat.csv")
            cost = (f"{(cpu_now - cpu_then) * 1000 / new_calls:.1f} ms CPU a call set up "
                        f"(gc {(gc_now[0] - gc_then[0]) * 1000 / new_calls:.2f} ms, {gc_now[1] - gc_then[1]} full)"
                        if new_calls > 0 else "")
            cpu_then, gc_then = cpu_now, gc_now
            print(f"  {'(no answer from /status)' if now is None else now} calls up, RSS "
                  f"{rss_kib(node.pid) / 1024:.1f} MiB, {failed_so_far} failed, {cost}, load {load_average()}",
                  flush=True)
            if failed_so_far:  # the figures would not be of established calls: stop early, say why
                raise HarnessError(f"{failed_so_far} calls failed ({causes}) with {active} up: the node does not sustain "
                                   f"{args.rate:g} cps here now; try a lower --rate (or fewer --calls)")
            if active >= args.calls:
                break
        full = rss_kib(node.pid)
        print_growth(snap_idle, snapshot(traced, "up"), active)
        rtts, probe_failed = probe(ports.server, args.probes)
        active_after_probe = active_calls(node.api_port)  # None: /status did not answer
        print(f"with {active} calls up: RSS {full / 1024:.1f} MiB; OPTIONS p50 {pct(rtts, 0.5):.2f} ms, p99 "
              f"{pct(rtts, 0.99):.2f} ms, max {max(rtts, default=float('nan')):.2f} ms over {len(rtts)} probes, "
              f"{probe_failed} failed; {active_after_probe} calls still up after the probes", flush=True)
        fields = sipp_result(sipp)
        after_cdrs = wait_cdrs(node.database, before, args.calls, timeout=60)
        time.sleep(5)
        after = rss_kib(node.pid)
        trimmed = malloc_trim(node.pid) if args.malloc_trim else None
        snap_after = snapshot(traced, "after")
        if snap_idle is not None and snap_after is not None:
            left = sum(d.size_diff for d in snap_after.compare_to(snap_idle, "filename"))
            print(f"tracemalloc after they ended: {left / 1024:,.0f} KiB of Python objects above idle "
                  f"(RSS {(after - idle) / 1024:,.1f} MiB above idle)", flush=True)
            print_growth(snap_idle, snap_after, args.calls, top=15)
        if gc_stats is not None and gc_stats.exists():
            stats = json.loads(gc_stats.read_text(encoding="ascii"))
            print("collector from idle on, generations 0/1/2: " + ", ".join(
                f"{n} collections {s:.2f} s (longest {m * 1000:.0f} ms) {c} freed" for n, s, m, c in
                zip(stats["collections"], stats["seconds"], stats["longest"], stats["collected"], strict=True))
                  + f"; frozen at idle {stats['frozen_at_idle']}, thresholds {stats['threshold']}", flush=True)
        if node.proc is not None and node.proc.poll() is not None:
            raise HarnessError(f"switchd exited ({node.proc.returncode}):\n{node.log()}")
    finally:
        if sipp is not None:
            stop_sipp(sipp)
        node.stop()
    per_call = (full - idle) / active if active else float("nan")
    failed = int(number(fields, "failed") or 0)
    new, still_open = after_cdrs.rows - before.rows, after_cdrs.open
    print(f"calls: {fields.get('ok')} ok, {failed} failed ({fields.get('fail_causes', '-')}), max up {active}; "
          f"CDRs {new} new, {still_open} open; node CPU {number(fields, 'cpu_srv_s'):.1f} s")
    print(f"RSS per established call above idle: {per_call:.1f} KiB (target <= 16 KiB): "
          f"{'met' if per_call <= 16 else 'NOT met'}")
    print(f"OPTIONS while up: p50 {pct(rtts, 0.5):.2f} ms, p99 {pct(rtts, 0.99):.2f} ms (target < 10 ms): "
          f"{'met' if pct(rtts, 0.99) < 10 and not probe_failed else 'NOT met'}")
    print(f"RSS idle {idle / 1024:.1f} MiB, all up {full / 1024:.1f} MiB, after they ended {after / 1024:.1f} MiB: "
          f"{(full - after) / max(1, full - idle):.0%} of the growth returned; load {load_average()}")
    if trimmed is not None:
        print(f"after glibc malloc_trim(0) in the node (gdb): RSS {trimmed / 1024:.1f} MiB, "
              f"{(full - trimmed) / max(1, full - idle):.0%} of the growth returned")
    return (failed == 0 and active >= args.calls and per_call <= 16 and pct(rtts, 0.99) < 10
            and not probe_failed and new == args.calls and still_open == 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--calls", type=int, default=50_000, help="concurrent calls (default 50000)")
    p.add_argument("--rate", type=float, default=300.0, help="set-up rate, calls/s (default 300)")
    p.add_argument("--plateau", type=float, default=40.0, help="s all calls stay up together (default 40)")
    p.add_argument("--probes", type=int, default=2000, help="OPTIONS samples while they are up (default 2000)")
    p.add_argument("--warmup", type=int, default=100, help="calls before the idle figure (default 100)")
    p.add_argument("--ports", default="5060,5070", help="SERVER,CALLEE ports on 127.0.0.1 (default 5060,5070)")
    p.add_argument("--repo", type=Path, default=REPO, help="the switchd source tree to run (default this checkout)")
    p.add_argument("--gc-probe", action="store_true", help="time the node's garbage collections (bench/_gc_probe.py)")
    p.add_argument("--malloc-trim", action="store_true",
                   help="after the calls ended, make the node call glibc malloc_trim(0) through gdb and read RSS again")
    p.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                   help="trace the node's allocations (slows it): live objects a call, by source line")
    args = p.parse_args(argv)
    if args.tracemalloc:
        os.environ["SWITCHD_TRACEMALLOC"] = str(args.tracemalloc)  # read by bench/_gc_probe.py in the node
    try:
        args.ports = Ports.parse(args.ports)
    except ValueError:
        p.error(f"--ports: two different ports SERVER,CALLEE, not {args.ports!r}")
    if not (args.repo / "switchd" / "__init__.py").is_file():
        p.error(f"--repo: no switchd package in {args.repo}")
    if args.calls < 1 or args.rate <= 0 or args.probes < 1 or args.plateau <= 0:
        p.error("--calls, --rate, --probes and --plateau must be positive")
    if shutil.which("sipp") is None:
        print("held_calls: sipp is not installed", file=sys.stderr)
        return 2
    stop_on_signals()
    if raise_nofile() < 1024:
        print("held_calls: the open-file limit is too low", file=sys.stderr)
        return 2
    return run_in_tempdir("held_calls", partial(run, args))


if __name__ == "__main__":
    raise SystemExit(main())
