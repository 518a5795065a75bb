"""Overload: offer switchd twice its clean rate, with its limits as production would set them (issue 16).

    python bench/overload.py --clean-rate 300            # 600 cps for 20 s, [limits] cps = 300
    python bench/overload.py --clean-rate 300 --factor 2 --seconds 30 --transport u1
    python bench/overload.py --clean-rate 300 --max-loop-lag 5     # also refuse while the loop is 5 ms late

switchd runs from a temp dir (SQLite, the sample rate deck, log level WARNING) with [limits] cps at
the clean rate and the shipped burst (200); max_calls stays at the shipped 1,000 unless the
admitted calls (clean rate x (hold + 1 s)) would not fit, then it is raised to fit. SIPp offers
`--factor` x the clean rate for `--seconds` with bench/scenarios/uac_overload.xml (the built-in
uac that also ACKs a 503 and ends the call), through bench/sipp_cps.sh -C, which captures the
loopback traffic. From the capture, per call: the node's final answer to the INVITE and when.

Printed: goodput (calls answered 200 per second of offered load; judged over the second half of
the offer, once the burst the bucket lets through at first is spent) against the clean rate (target
>= 90 %); the 503s and their INVITE -> 503 latency at the node (target p95 <= 5 ms); failures among
admitted calls (every call not refused with 503 must be answered and complete: target 0); and the
CDRs (one per admitted call, all closed). Exit status 0 only if every target is met. Uses
127.0.0.1:5060 and :5070 (others with --ports), which must be free; needs sipp and tcpdump; stops
what it starts by PID.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    BENCH,
    CdrCounts,
    HarnessError,
    Ports,
    SwitchdNode,
    load_average,
    machine,
    number,
    ports_free,
    raise_nofile,
    run_in_tempdir,
    run_sipp,
    stop_on_signals,
    wait_cdrs,
)
from _wire import final_latency, pct, read_legs

SCENARIO = BENCH / "scenarios" / "uac_overload.xml"
SHIPPED_BURST = 200
SHIPPED_MAX_CALLS = 1000


def run(args: argparse.Namespace, tmp: Path) -> bool:
    clean = args.clean_rate
    offered = clean * args.factor
    calls = round(offered * args.seconds)
    max_calls = max(SHIPPED_MAX_CALLS, round(clean * (args.hold_ms / 1000 + 1) * 1.5))
    ports = args.ports
    ports_free(ports, args.transport)
    node = SwitchdNode(tmp / "switchd", ports=ports, transport=args.transport, cps=clean, burst=SHIPPED_BURST,
                       max_calls=max_calls, max_loop_lag=args.max_loop_lag / 1000, workers=args.workers)
    node.start()
    try:
        print(f"overload: {machine()}; load {load_average()}; switchd pid {node.pid}, [limits] cps={clean:g} "
              f"burst={SHIPPED_BURST} max_calls={max_calls} max_loop_lag={args.max_loop_lag:g} ms; offering {offered:g} cps x {args.seconds:g} s = "
              f"{calls} calls, hold {args.hold_ms} ms, {args.transport}", flush=True)
        before = CdrCounts.read(node.database)
        out = tmp / "sipp"
        fields = run_sipp(ports=ports, rate=offered, calls=calls, hold_ms=args.hold_ms, transport=args.transport,
                          capture=True, outdir=out, scenario=SCENARIO, pids=[node.pid])
        capture = read_legs(out / "capture.pcap", ports.server, ports.callee)
        after = wait_cdrs(node.database, before, 0)
        if node.proc is not None and node.proc.poll() is not None:
            raise HarnessError(f"switchd exited under overload ({node.proc.returncode}):\n{node.log()}")
    finally:
        node.stop()
    invites = [leg for leg in capture.a.values() if leg.invite is not None]
    refused_us = final_latency(capture, 503)
    answered = sum(1 for leg in invites if leg.final is not None and leg.final[0] == 200)
    other = sum(1 for leg in invites if leg.final is not None and leg.final[0] not in (200, 503))
    unanswered = sum(1 for leg in invites if leg.final is None)
    sipp_failed = int(number(fields, "failed") or 0)
    starts = sorted(leg.invite for leg in invites if leg.invite is not None)
    span = starts[-1] - starts[0] if len(starts) > 1 else float("nan")
    goodput = answered / span if span else float("nan")
    # the second half of the offer, once the bucket's burst is spent: the rate the node holds
    half = starts[0] + span / 2 if starts else 0.0
    late = sum(1 for leg in invites if leg.invite is not None and leg.invite >= half
               and leg.final is not None and leg.final[0] == 200)
    steady = late / (span / 2) if span else float("nan")
    # the same second half for the 503s: how fast the node refuses once the first burst is behind it
    steady_refused_us = final_latency(capture, 503, since=half)
    new_cdrs, still_open = after.rows - before.rows, after.open
    admitted = len(invites) - len(refused_us)
    admitted_failures = other + unanswered + sipp_failed
    p95_ms = pct(refused_us, 0.95) / 1000
    goodput_ok = steady >= 0.9 * clean
    refusal_ok = bool(refused_us) and p95_ms <= 5.0
    cdrs_ok = new_cdrs == admitted and still_open == 0
    print(f"INVITEs seen {len(invites)} (sent {fields.get('sent', 'NA')}) over {span:.1f} s; "
          f"answered 200: {answered}; refused 503: {len(refused_us)}; other final: {other}; no final: {unanswered}; "
          f"SIPp failed calls: {sipp_failed} ({fields.get('fail_causes', '-')}); pcap drops {fields.get('pcap_drops')}")
    print(f"goodput {goodput:.1f} calls/s over the whole offer (with the burst of {SHIPPED_BURST}); "
          f"{steady:.1f} calls/s over its second half = {steady / clean:.1%} of the clean rate {clean:g} "
          f"(target >= 90 %): {'met' if goodput_ok else 'NOT met'}")
    print(f"INVITE -> 503 at the node: p50 {pct(refused_us, 0.5) / 1000:.2f} ms, p95 {p95_ms:.2f} ms, "
          f"p99 {pct(refused_us, 0.99) / 1000:.2f} ms, max {max(refused_us, default=float('nan')) / 1000:.2f} ms "
          f"(target p95 <= 5 ms): {'met' if refusal_ok else 'NOT met'}; over the second half of the offer: "
          f"{len(steady_refused_us)} 503s, p50 {pct(steady_refused_us, 0.5) / 1000:.2f} ms, "
          f"p95 {pct(steady_refused_us, 0.95) / 1000:.2f} ms")
    print(f"admitted calls {admitted}, failures among them {admitted_failures} (target 0): "
          f"{'met' if admitted_failures == 0 else 'NOT met'}; CDRs {new_cdrs} new, {still_open} open: "
          f"{'every admitted call has a closed CDR' if cdrs_ok else 'NOT one closed CDR per admitted call'}")
    print(f"node CPU {number(fields, 'cpu_srv_s'):.2f} s over the {number(fields, 'wall'):.1f} s run "
          f"({fields.get('cpu_srv', 'NA')} of one core); load {load_average()}")
    return goodput_ok and refusal_ok and admitted_failures == 0 and cdrs_ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--clean-rate", type=float, required=True, help="switchd's highest clean rate (bench/cps.sh)")
    p.add_argument("--factor", type=float, default=2.0, help="offered load / clean rate (default 2)")
    p.add_argument("--seconds", type=float, default=20.0, help="offered load, s (default 20)")
    p.add_argument("--hold-ms", type=int, default=1000, help="call hold, ACK -> BYE (default 1000)")
    p.add_argument("--transport", choices=["t1", "u1"], default="t1")
    p.add_argument("--workers", type=int, help="run switchd with `run --workers N`")
    p.add_argument("--max-loop-lag", type=float, default=0.0, metavar="MS",
                   help="[limits] max_loop_lag in ms: refuse new calls while the event loop is later (default off)")
    p.add_argument("--ports", default="5060,5070", help="SERVER,CALLEE ports on 127.0.0.1 (default 5060,5070)")
    args = p.parse_args(argv)
    try:
        args.ports = Ports.parse(args.ports)
    except ValueError:
        p.error(f"--ports: two different ports SERVER,CALLEE, not {args.ports!r}")
    if args.clean_rate <= 0 or args.factor <= 0 or args.seconds <= 0:
        p.error("--clean-rate, --factor and --seconds must be positive")
    if args.max_loop_lag < 0:
        p.error("--max-loop-lag must be >= 0")
    for tool in ("sipp", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"overload: {tool} is not installed", file=sys.stderr)
            return 2
    raise_nofile()
    stop_on_signals()
    return run_in_tempdir("overload", partial(run, args))


if __name__ == "__main__":
    raise SystemExit(main())
