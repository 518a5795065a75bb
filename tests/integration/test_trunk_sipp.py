"""switchd registers with a carrier's registrar played by SIPp: digest, a refresh, the un-REGISTER.

SIPp (``uas_trunk_registrar.xml``) challenges every REGISTER with 401 and checks the credentials
(verifyauth), grants 2 s so switchd's refresh comes 1.8 s later, and takes the Expires 0
REGISTER switchd sends when it stops. The registration is one SIPp call: it succeeds only if
every step came, in order, with good credentials.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import require_binary

from ._daemon import GatewaySpec
from ._sipp import SippCallee, free_tcp_port
from .conftest import StartSwitchd

pytestmark = pytest.mark.integration

USER, PASSWORD = "4420790001", "trunk-Secret-7731"


def wait_for_answers(path: Path, text: str, count: int, *, timeout: float = 15.0) -> None:
    """Return once SIPp's message trace holds `text` `count` times (what it sent and received)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = path.read_text(encoding="latin-1").count(text) if path.exists() else 0
        if seen >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} {seen} times in SIPp's trace after {timeout}s, not {count}")
        time.sleep(0.05)


def test_switchd_registers_with_a_sipp_registrar_refreshes_and_unregisters_on_stop(
    start_switchd: StartSwitchd, tmp_path: Path,
) -> None:
    sipp = require_binary("sipp")
    trace = tmp_path / "registrar_messages.log"
    registrar = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario="uas_trunk_registrar.xml",
                           name="registrar", extra=("-key", "user", USER, "-key", "password", PASSWORD,
                                                    "-trace_msg", "-message_file", str(trace)))
    try:
        daemon = start_switchd([GatewaySpec("carrier", registrar.port, registration={
            "username": USER, "password": PASSWORD, "expires": 600, "domain": "carrier.test"})])
        wait_for_answers(trace, "SIP/2.0 200 OK", 2)  # registered, then refreshed 1.8 s later
        daemon.wait_for_log("registered with")
        assert daemon.stop() == 0
    finally:
        stats = registrar.stop()
    assert (stats.successful, stats.failed) == (1, 0), registrar.errors() + daemon.log()
    sent = trace.read_text(encoding="latin-1")
    assert sent.count("REGISTER sip:carrier.test SIP/2.0") == 5  # 2 to register, 2 to refresh, 1 to leave
    assert PASSWORD not in daemon.stderr_path.read_text(encoding="utf-8", errors="replace")
