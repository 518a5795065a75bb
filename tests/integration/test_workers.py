"""`switchd run --workers 2` as an operator runs it, with SIPp: both workers take calls, a worker killed
with SIGKILL under calls is restarted and its open CDRs recovered, SIGTERM drains every worker,
SIGHUP reloads every worker.

    SIPp uac (-t tn: one TCP connection per call) --> supervisor's port, 2 workers --> SIPp uas (gw1)

One connection per call, so the kernel spreads the calls over both workers (SO_REUSEPORT hashes
each connection's 4-tuple); the CDRs' node (`itest.w0`, `itest.w1`) tells which worker took each.
Every process is the test's own child, stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from switchd.billing import Cdr, CdrStatus, Disposition
from tests.conftest import require_binary
from tests.integration._daemon import GatewaySpec, RouteSpec, Switchd, write_routes
from tests.integration._fault_load import callee_for, gateway
from tests.integration._sipp import SippCaller, free_udp_port, run_caller
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

WORKERS = ("--workers", "2")
NODES = ("itest.w0", "itest.w1")


def per_node(cdrs: list[Cdr]) -> collections.Counter[str]:
    return collections.Counter(c.node for c in cdrs)


def start_workers(start_switchd: StartSwitchd, gateways: list[GatewaySpec], **options: object) -> Switchd:
    """The supervisor with two workers, once both nodes run (their trees started)."""
    switchd = start_switchd(gateways, args=WORKERS, **options)  # type: ignore[arg-type]
    switchd.wait_for_log("application switchd started", count=2, timeout=30)
    return switchd


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def worker_pid(switchd: Switchd, index: int) -> int:
    text = (switchd.cfg.config.data_dir / f"switchd.w{index}.pid").read_text(encoding="ascii")
    return int(text)


@contextmanager
def caller(tmp_path: Path, switchd: Switchd, *, calls: int, rate: float, hold_ms: int,
           name: str = "uac") -> Iterator[SippCaller]:
    """A SIPp uac in the background, one TCP connection per call, stopped by PID at the end."""
    uac = SippCaller(require_binary("sipp"), tmp_path, switchd.target, calls=calls, rate=rate, hold_ms=hold_ms,
                     name=name, transport="tn", timeout_s=60)
    try:
        yield uac
    finally:
        uac.stop()


def test_both_workers_take_calls_and_bill_them_under_their_own_node_names(
        start_switchd: StartSwitchd, tmp_path: Path) -> None:
    with callee_for(tmp_path) as callee:
        switchd = start_workers(start_switchd, gateway(callee))
        run = run_caller(require_binary("sipp"), tmp_path, switchd.target, calls=40, rate=20, transport="tn")
        cdrs = switchd.wait_closed(40, timeout=20)
        stopped = switchd.stop(timeout=30)
    account = f"caller {run}; CDRs per node {per_node(cdrs)}\n{switchd.log()}"
    assert run.returncode == 0 and run.stats.successful == 40, account
    assert set(per_node(cdrs)) == set(NODES), account  # 40 connections: both workers got some
    assert all(c.status is CdrStatus.CLOSED and c.disposition is Disposition.ANSWERED for c in cdrs), account
    assert stopped == 0, account


def test_a_worker_killed_under_calls_is_restarted_and_its_open_cdrs_closed_as_recovered(
        start_switchd: StartSwitchd, tmp_path: Path) -> None:
    with callee_for(tmp_path) as callee:
        switchd = start_workers(start_switchd, gateway(callee))
        killed = worker_pid(switchd, 1)
        with caller(tmp_path, switchd, calls=30, rate=15, hold_ms=8000, name="long"):
            # calls up on both workers: answered, their CDRs open
            up = switchd.wait_for_cdrs(lambda cdrs: all(
                sum(c.node == n and c.answer_at is not None for c in cdrs) >= 3 for n in NODES), timeout=20)
            open_at_kill = {c.call_id for c in switchd.cdrs() if c.node == "itest.w1" and c.status is CdrStatus.OPEN}
            os.kill(killed, signal.SIGKILL)
            switchd.wait_for_log("worker 1 started", count=2, timeout=30)
            switchd.wait_for_log("application switchd started", count=3, timeout=30)
            # the restarted worker, under the same name, closes what the dead one left open
            cdrs = switchd.wait_for_cdrs(lambda cdrs: not any(
                c.node == "itest.w1" and c.status is CdrStatus.OPEN for c in cdrs), timeout=30)
            # worker 0's calls were not touched: they end after their hold, closed normally
            cdrs = switchd.wait_for_cdrs(lambda cdrs: all(c.status is not CdrStatus.OPEN for c in cdrs),
                                         timeout=30)
        # the restarted worker takes new calls
        after = run_caller(require_binary("sipp"), tmp_path, switchd.target, calls=20, rate=20, transport="tn",
                           name="after")
        final = switchd.wait_closed(len(cdrs) + 20, timeout=20)
        stopped = switchd.stop(timeout=30)
    restarted = worker_pid(switchd, 1) if (switchd.cfg.config.data_dir / "switchd.w1.pid").exists() else None
    w1 = [c for c in cdrs if c.node == "itest.w1"]
    w0 = [c for c in cdrs if c.node == "itest.w0"]
    account = (f"up before the kill {per_node(up)}; open on w1 at the kill {len(open_at_kill)}; after {after}; "
               f"CDRs {[(c.node, c.status.value, c.disposition) for c in cdrs]}\n{switchd.log()}")
    assert open_at_kill, account
    assert all(c.status is CdrStatus.RECOVERED for c in w1 if c.call_id in open_at_kill), account
    assert all(c.status is CdrStatus.CLOSED and c.disposition is Disposition.ANSWERED for c in w0), account
    assert restarted is None  # removed at the clean stop
    assert after.returncode == 0 and set(per_node(final[-20:])) == set(NODES), account
    assert stopped == 0, account


def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(start_switchd: StartSwitchd, tmp_path: Path) -> None:
    with callee_for(tmp_path) as callee:
        switchd = start_workers(start_switchd, gateway(callee))
        with caller(tmp_path, switchd, calls=20, rate=20, hold_ms=3000) as uac:
            switchd.wait_for_cdrs(lambda cdrs: len(cdrs) == 20 and set(per_node(cdrs)) == set(NODES)
                                  and all(c.answer_at is not None for c in cdrs), timeout=20)
            switchd.signal(signal.SIGTERM)
            stopped = switchd.wait(30)
            caller_code = uac.wait(30)
        cdrs = switchd.cdrs()
    account = f"caller {caller_code} {uac.stats()}; CDRs {per_node(cdrs)}\n{switchd.log()}"
    assert switchd.log(tail=10_000).count("draining: new calls are refused") == 2, account  # each worker drained
    assert caller_code == 0 and uac.stats().successful == 20, account  # every call ended by its caller
    assert all(c.status is CdrStatus.CLOSED and c.disposition is Disposition.ANSWERED for c in cdrs), account
    assert stopped == 0, account


def test_sighup_reloads_every_worker(start_switchd: StartSwitchd, tmp_path: Path) -> None:
    with callee_for(tmp_path) as callee:
        switchd = start_workers(start_switchd, gateway(callee), routes_file=True)
        write_routes(switchd.cfg.path.parent / "routes.toml", gateway(callee),
                     [RouteSpec("1", ("gw1",)), RouteSpec("", ("gw1",))])
        switchd.signal(signal.SIGHUP)
        switchd.wait_for_log("reloaded: 2 routes", count=2, timeout=20)
        stopped = switchd.stop(timeout=30)
    assert "SIGHUP forwarded to 2 workers" in switchd.log(tail=10_000)
    assert stopped == 0


def test_workers_stop_when_their_supervisor_is_killed(start_switchd: StartSwitchd, tmp_path: Path) -> None:
    with callee_for(tmp_path) as callee:
        switchd = start_workers(start_switchd, gateway(callee))
        pids = [worker_pid(switchd, i) for i in (0, 1)]
        switchd.signal(signal.SIGKILL)
        switchd.wait(10)
        # each worker drains (as on SIGTERM) and exits, removing its pidfile
        switchd.wait_for_log("application switchd stopped, exit code 0", count=2, timeout=30)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)  # not our children (the init process reaps them): only their pid tells
    assert not any(alive(pid) for pid in pids), f"{pids}\n{switchd.log()}"
    gone = [not (switchd.cfg.config.data_dir / f"switchd.w{i}.pid").exists() for i in (0, 1)]
    assert gone == [True, True], f"{pids}\n{switchd.log()}"
    assert switchd.log(tail=10_000).count("the supervisor has exited: stopping this worker") == 2


def test_over_udp_each_peer_is_served_by_one_worker_for_all_its_calls(
        start_switchd: StartSwitchd, tmp_path: Path) -> None:
    udp_port = free_udp_port()
    with callee_for(tmp_path) as callee:  # B-legs over TCP: a UDP gateway is refused with workers > 1
        switchd = start_workers(start_switchd, gateway(callee), sip={"listen_udp": f"127.0.0.1:{udp_port}"})
        runs = {name: run_caller(require_binary("sipp"), tmp_path, f"127.0.0.1:{udp_port}", calls=10, rate=10,
                                 transport="u1", name=name, timeout_s=60)
                for name in ("phone-a", "phone-b", "phone-c")}
        cdrs = switchd.wait_closed(30, timeout=20)
        stopped = switchd.stop(timeout=30)
    # SIPp numbers its Call-IDs <n>-<its pid>@<ip>: the pid tells which caller (one source port each)
    by_caller = collections.defaultdict(set)
    for cdr in cdrs:
        by_caller[cdr.call_id.split("-", 1)[1]].add(cdr.node)
    account = f"{ {n: (r.returncode, r.stats) for n, r in runs.items()} }; nodes per caller {dict(by_caller)}"
    assert all(r.returncode == 0 and r.stats.successful == 10 for r in runs.values()), account
    assert len(by_caller) == 3 and all(len(nodes) == 1 for nodes in by_caller.values()), account
    assert all(c.status is CdrStatus.CLOSED and c.disposition is Disposition.ANSWERED for c in cdrs), account
    assert stopped == 0, account
