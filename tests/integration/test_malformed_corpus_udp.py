"""The malformed-message corpus (tests/sip/malformed) over UDP against a live `python -m switchd run`.

Every case is one datagram from a socket of its own, followed by a clean OPTIONS in a second
datagram; the status lines that come back must be what the manifest says for UDP (the TCP answer,
but for the framing cases: nothing is closed, and Content-Length is optional). Afterwards the node
still answers, no case left a CDR, it stops cleanly on SIGTERM, and its stderr holds no
"Traceback" and no "crashed".
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.integration._daemon import GatewaySpec
from tests.integration._sipp import free_udp_port
from tests.integration.conftest import StartSwitchd
from tests.sip.malformed_corpus import CASES, Case, after, answers, expected_udp

pytestmark = pytest.mark.integration

DEADLINE = 10.0  # seconds one case may take


def exchange(port: int, case: Case) -> list[str]:
    """`case` then its OPTIONS, each a datagram; the answers until the OPTIONS' 200, within DEADLINE."""
    done = f"200 after-{case.name}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(case.data, ("127.0.0.1", port))
        sock.sendto(after(case), ("127.0.0.1", port))
        got: list[str] = []
        deadline = time.monotonic() + DEADLINE
        while got[-1:] != [done]:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, source = sock.recvfrom(65_536)
            except TimeoutError:
                return [*got, f"no answer within {DEADLINE}s"]
            assert source == ("127.0.0.1", port)
            got += answers(data, False)
        return got


def test_every_corpus_case_over_udp_gets_its_answer_from_a_live_node_which_lives_on(
        start_switchd: StartSwitchd) -> None:
    udp_port = free_udp_port()
    switchd = start_switchd([GatewaySpec("gw1", free_udp_port())], sip={"listen_udp": f"127.0.0.1:{udp_port}"})
    wrong = {case.name: (got, expected_udp(case)) for case in CASES
             if (got := exchange(udp_port, case)) != expected_udp(case)}
    assert wrong == {}, f"{wrong}\n--- switchd log ---\n{switchd.log()}"
    assert switchd.stop() == 0, switchd.log()
    log = switchd.stderr_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log and "crashed" not in log, log[-5000:]
    assert switchd.cdrs() == []
