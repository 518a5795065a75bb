"""Our SIPp XML scenarios are valid SIP conversations: each caller scenario completes against its
callee scenario directly (SIPp to SIPp, no switch in between). The switch tests then reuse them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration._sipp import SippCallee, free_tcp_port, run_caller

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("caller", "callee"),
    [
        ("uac_busy.xml", "uas_busy.xml"),
        ("uac_cancel.xml", "uas_ring.xml"),
        ("uac_remote_hangup.xml", "uas_hangup.xml"),
    ],
)
def test_scenario_pair_completes_directly(caller: str, callee: str, tmp_path: Path) -> None:
    sipp = require_binary("sipp")
    uas = SippCallee(sipp, tmp_path, port=free_tcp_port(), scenario=callee, hold_ms=100)
    try:
        run = run_caller(sipp, tmp_path, f"127.0.0.1:{uas.port}", scenario=caller, calls=3, rate=20)
    finally:
        callee_stats = uas.stop()
    assert run.returncode == 0, run.errors
    assert (run.stats.successful, run.stats.failed) == (3, 0)
    assert callee_stats.incoming == 3
