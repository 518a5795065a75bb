"""The operator's commands against a real `python -m switchd run` (its HTTP API), as a user meets them.

A daemon with chaos enabled and a simulated gateway (`switchd sim`), both child processes on
127.0.0.1 stopped by PID; calls are placed with `switchd call` / `switchd load`. Every command
here goes through the daemon's API (or, for `cdr` and `db`, its database): status, top, calls,
trace, routes, rates, policy, chaos under load with no CDR lost, and the pidfile.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from switchd.cli import main

from ..integration._daemon import GatewaySpec, Switchd, write_config
from ..integration._sipp import free_tcp_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _wait_for_line(proc: subprocess.Popen[bytes], marker: str, timeout: float = 30.0) -> str:
    """The first stdout line of `proc` containing `marker` (fails after `timeout` s or at its exit)."""
    assert proc.stdout is not None
    fd, seen = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
            found = [line for line in seen.decode(errors="replace").splitlines() if marker in line]
            if found:
                return found[0]
    raise AssertionError(f"no {marker!r} from {proc.args!r}; exit status {proc.poll()}; output {seen!r}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def gateway() -> Iterator[int]:
    """`switchd sim` answering every call after 0.1 s of ringing; its port."""
    port = free_tcp_port()
    proc = subprocess.Popen([sys.executable, "-m", "switchd", "sim", "--listen", f"127.0.0.1:{port}",
                             "--default", "answer:ring=0.1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        _wait_for_line(proc, "listening on")
        yield port
    finally:
        _stop(proc)


@pytest.fixture
def daemon(tmp_path: Path, gateway: int) -> Iterator[Switchd]:
    """`switchd run` with the API on a free port, chaos allowed, every call to the sim gateway."""
    cfg = write_config(tmp_path / "node", [GatewaySpec("sim", gateway)], api={"chaos": True})
    node = Switchd(cfg, tmp_path / "switchd.stderr").start()
    try:
        _until(lambda: main(["status", "--json", *_at(node)]) == 0, "the API to answer")
        yield node
    finally:
        node.stop()


def _at(node: Switchd) -> list[str]:
    return ["--config", str(node.cfg.path)]


def _until(done: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Ask `done` every 0.1 s until it holds (the daemon is another process: asking is all we can do)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.1)


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _call(node: Switchd, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Place one call through the daemon with `switchd call`; its Call-ID."""
    capsys.readouterr()
    assert main(["call", "14155550199", "14155550100", "--server", node.target, *extra]) == 0
    found = re.search(r"Call-ID (\S+)", capsys.readouterr().out)
    assert found is not None
    return found[1]


# --- the daemon without the API: the pidfile ----------------------------------------------------------------


def test_switchd_run_holds_its_pidfile_while_it_runs_and_status_then_says_it_is_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "node", [GatewaySpec("sim", free_tcp_port())])
    pidfile = cfg.config.api.pidfile
    node = Switchd(cfg, tmp_path / "switchd.stderr").start()
    try:
        assert pidfile.read_text() == f"{node.pid}\n"
    finally:
        assert node.stop() == 0
    assert not pidfile.exists()
    assert main(["status", *_at(node)]) == 1
    err = capsys.readouterr().err
    assert "switchd is not running" in err and "no pidfile" in err and "switchd run" in err


# --- with the API ------------------------------------------------------------------------------------------------


def test_status_and_top_show_the_running_node(daemon: Switchd, capsys: pytest.CaptureFixture[str]) -> None:
    status = _json(capsys, ["status", "--json", *_at(daemon)])
    assert status["node"] == "itest" and status["draining"] is False
    assert status["calls"]["active"] == 0 and status["billing"]["connected"] is True
    names = {p["name"] or p["child_id"] for root in status["tree"] for p in _walk(root)}
    assert {"events", "billing", "router", "calls", "sip"} <= names
    assert main(["status", *_at(daemon)]) == 0
    out = capsys.readouterr().out
    assert "itest" in out and "database connected" in out and "0 active" in out
    assert main(["top", "--once", *_at(daemon)]) == 0
    frame = capsys.readouterr().out
    for name in ("events", "billing", "router", "calls", "sip", "active calls", "q or Ctrl-C quits"):
        assert name in frame


def _walk(process: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield process
    for kid in process.get("children", []):
        yield from _walk(kid)


def test_trace_shows_the_whole_ladder_of_a_call_placed_in_the_test(
    daemon: Switchd, capsys: pytest.CaptureFixture[str]
) -> None:
    call_id = _call(daemon, capsys, "--hold", "0.2")
    trace = _json(capsys, ["trace", call_id, "--json", *_at(daemon)])
    ladder = [(m["leg"], m["direction"], m["summary"].split(" ")[0]) for m in trace["messages"]]
    assert ladder[:3] == [("a", "in", "INVITE"), ("a", "out", "100"), ("b", "out", "INVITE")]
    for step in [("b", "in", "200"), ("a", "out", "200"), ("a", "in", "ACK"), ("b", "out", "ACK"),
                 ("a", "in", "BYE"), ("b", "out", "BYE")]:
        assert step in ladder, (step, ladder)
    assert main(["trace", call_id, "--full", *_at(daemon)]) == 0
    out = capsys.readouterr().out
    assert f"Call-ID {call_id}" in out and "──INVITE" in out and "◀──200 OK" in out
    assert "Via: SIP/2.0/TCP" in out  # --full


def test_calls_lists_shows_and_hangs_up_a_call_and_its_cdr_says_the_operator_ended_it(
    daemon: Switchd, capsys: pytest.CaptureFixture[str]
) -> None:
    caller = subprocess.Popen([sys.executable, "-m", "switchd", "call", "14155550199", "14155550100",
                               "--server", daemon.target, "--hold", "60"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        listing: list[dict[str, Any]] = []

        def answered() -> bool:
            listing[:] = _json(capsys, ["calls", "--json", *_at(daemon)])["calls"]
            return any(c["answered_at"] for c in listing)

        _until(answered, "answered call in `switchd calls`")
        (call,) = listing
        shown = _json(capsys, ["calls", "show", call["call_id"], "--json", *_at(daemon)])
        assert shown["caller"].endswith("14155550199") and shown["legs"]
        assert main(["calls", "hangup", call["call_id"], *_at(daemon)]) == 0
        assert "ending call" in capsys.readouterr().out
        assert caller.wait(timeout=15) == 0  # the switch's BYE ended the caller's call
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait(10)
    [cdr] = daemon.wait_closed(1)
    assert cdr.call_id == call["call_id"] and cdr.hangup_by is not None and cdr.hangup_by.value == "operator"
    assert main(["calls", "hangup", call["call_id"], *_at(daemon)]) == 1  # no longer in progress


def test_routes_rates_and_policy_change_the_running_router(daemon: Switchd, capsys: pytest.CaptureFixture[str]) -> None:
    routes = _json(capsys, ["routes", "--json", *_at(daemon)])
    assert routes["policy"] == "priority_weight"
    assert [g["name"] for r in routes["routes"] for g in r["gateways"]] == ["sim"]
    reloaded = _json(capsys, ["routes", "reload", "--json", *_at(daemon)])
    assert reloaded["ok"] is True and reloaded["routes"] == 1
    loaded = _json(capsys, ["rates", "load", str(REPO / "config" / "rates.csv"), "--json", *_at(daemon)])
    assert loaded["tariffs"] > 0
    swapped = _json(capsys, ["policy", "upgrade", "least_cost", "--json", *_at(daemon)])
    assert swapped == {"policy": "least_cost", "previous": "priority_weight"}
    assert _json(capsys, ["routes", "--json", *_at(daemon)])["policy"] == "least_cost"
    assert main(["policy", "upgrade", "no_such_policy", *_at(daemon)]) == 2
    assert "no_such_policy" in capsys.readouterr().err
    _call(daemon, capsys, "--hold", "0")  # calls still go through


def test_cdr_and_db_read_what_the_daemon_wrote(daemon: Switchd, capsys: pytest.CaptureFixture[str]) -> None:
    call_id = _call(daemon, capsys, "--hold", "0.1")
    daemon.wait_closed(1)
    records = _json(capsys, ["cdr", "export", "--format", "json", "--call-id", call_id, *_at(daemon)])
    assert records["call_id"] == call_id and records["gateway"] == "sim"
    summary = _json(capsys, ["cdr", "summary", "--by", "gateway", "--json", *_at(daemon)])
    assert [(r["key"], r["calls"], r["answered"]) for r in summary["rows"]] == [("sim", 1, 1)]
    current = _json(capsys, ["db", "current", "--json", *_at(daemon)])
    assert current["at_head"] is True


@pytest.mark.parametrize("target", ["router", "billing", "events", "call"])
def test_chaos_under_load_restarts_what_it_kills_and_loses_no_cdr(
    daemon: Switchd, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    calls = 60
    load = subprocess.Popen([sys.executable, "-m", "switchd", "load", "--rate", "20", "--calls", str(calls),
                             "--hold", "1", "--server", daemon.target, "--to", "1415666xxxx"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _until(lambda: _json(capsys, ["status", "--json", *_at(daemon)])["calls"]["active"] >= 5, "calls in flight")
        capsys.readouterr()
        assert main(["chaos", "--kill", target, "--count", "2" if target == "call" else "1", *_at(daemon)]) == 0, (
            capsys.readouterr())
        out = capsys.readouterr().out
        assert "no CDR missing" in out
        assert ("restarted as" in out) if target != "call" else ("not restarted (temporary)" in out)
        load.wait(timeout=60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait(10)
    cdrs = daemon.wait_closed(calls, timeout=30)
    assert len({c.call_id for c in cdrs}) == calls  # every call of the load has its CDR, each closed
