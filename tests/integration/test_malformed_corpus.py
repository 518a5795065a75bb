"""The malformed-message corpus (tests/sip/malformed) against a live `python -m switchd run`.

Every case goes over TCP on a connection of its own, followed by a clean OPTIONS when the
connection should survive it; the status lines that come back (or the close) must be what the
manifest says. Afterwards the node still answers a clean OPTIONS 200, no case left a CDR, it
stops cleanly on SIGTERM, and its stderr holds no "Traceback" and no "crashed": nothing the
corpus sends costs more than its own message.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.integration._daemon import GatewaySpec, Switchd
from tests.integration._sipp import free_tcp_port
from tests.integration.conftest import StartSwitchd
from tests.sip.malformed_corpus import CASES, Case, after, answers, expected, sent

pytestmark = pytest.mark.integration

DEADLINE = 10.0  # seconds one case may take before its connection is given up on


def exchange(switchd: Switchd, data: bytes, done: str) -> list[str]:
    """Send `data` on a new TCP connection; what comes back (`answers`) until `done` is answered or
    the node closes the connection, within DEADLINE."""
    with socket.create_connection(("127.0.0.1", switchd.sip_port), timeout=DEADLINE) as sock:
        sock.sendall(data)
        received, closed = b"", False
        deadline = time.monotonic() + DEADLINE
        while not closed and answers(received, False)[-1:] != [done]:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65_536)
            except TimeoutError:
                return [*answers(received, False), f"no answer within {DEADLINE}s"]
            except ConnectionResetError:
                chunk = b""
            closed = not chunk
            received += chunk
        return answers(received, closed)


def run_case(switchd: Switchd, case: Case) -> list[str]:
    return exchange(switchd, sent(case), f"200 after-{case.name}")


def test_every_corpus_case_gets_its_answer_from_a_live_node_which_lives_on(start_switchd: StartSwitchd) -> None:
    switchd = start_switchd([GatewaySpec("gw1", free_tcp_port())])  # nothing listens: no call may get that far
    wrong = {case.name: (got, expected(case)) for case in CASES if (got := run_case(switchd, case)) != expected(case)}
    assert wrong == {}, f"{wrong}\n--- switchd log ---\n{switchd.log()}"
    probe = CASES[0]
    assert exchange(switchd, after(probe), f"200 after-{probe.name}") == [f"200 after-{probe.name}"]
    assert switchd.stop() == 0, switchd.log()
    log = switchd.stderr_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "crashed" not in log, log[-5000:]
    assert switchd.cdrs() == []
