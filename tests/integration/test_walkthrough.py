"""The issue's "done when", as a user does it: `switchd run` in one terminal, `switchd sim` in another,
`switchd call` and `switchd load` in a third, then the CDRs with `switchd cdr` — every one a real
process (`python -m switchd ...`) on 127.0.0.1, bounded, stopped by PID.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration._daemon import GatewaySpec
from tests.integration._sipp import free_tcp_port, wait_for_tcp_port
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration


def switchd_cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`python -m switchd ARGS` to completion (bounded), its output as text."""
    return subprocess.run([sys.executable, "-m", "switchd", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)


@pytest.fixture
def sim_port(tmp_path: Path) -> Iterator[int]:
    """`switchd sim` listening on a free 127.0.0.1 port, answering after 0.2 s; stopped by PID."""
    port = free_tcp_port()
    with (tmp_path / "sim.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "switchd", "sim", "--listen", f"127.0.0.1:{port}",
                                 "--default", "answer:ring=0.2"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            wait_for_tcp_port(port, proc=proc)
            yield port
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(timeout=10) == 0
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
                raise


def test_run_sim_call_load_and_cdr_work_together_as_a_user_runs_them(
    start_switchd: StartSwitchd, sim_port: int
) -> None:
    switchd = start_switchd([GatewaySpec("local-sim", sim_port)])
    server = ["--server", switchd.target]

    one = switchd_cli("call", "14155550199", "14155550100", *server, "--hold", "0.5")
    assert one.returncode == 0, one.stderr
    assert "INVITE" in one.stdout and "answered: 200 OK" in one.stdout, one.stdout

    load = switchd_cli("load", "--rate", "20", "--calls", "40", "--hold", "0.5", *server,
                       "--from", "1415555xxxx", "--to", "1415666xxxx")
    assert load.returncode == 0, load.stderr
    assert "40 calls in" in load.stdout, load.stdout

    assert switchd.stop() == 0, switchd.log()
    listed = switchd_cli("cdr", "--config", str(switchd.cfg.path), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    cdrs = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(cdrs) == 41
    assert {(c["status"], c["disposition"], c["gateway"]) for c in cdrs} == {("closed", "ANSWERED", "local-sim")}
    assert {c["callee"] for c in cdrs} >= {"+14155550100", "+14156660000", "+14156660039"}
    assert all(c["rated"] and c["currency"] == "USD" for c in cdrs)
