"""One process per node name: a second claim fails naming the holder; the claim dies with its process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from switchd.billing import NodeClaimed, claim_node

REPO = Path(__file__).resolve().parents[2]

_HOLDER = """
import sys
from switchd.billing import claim_node
claim = claim_node(sys.argv[1], "n1")
print("claimed", flush=True)
sys.stdin.read()
"""


def test_a_second_claim_of_a_sqlite_node_fails_naming_the_holder_until_it_is_released(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'billing.db'}"
    with claim_node(url, "n1"):
        with pytest.raises(NodeClaimed) as refused:
            claim_node(url, "n1")
        message = str(refused.value)
        assert message.startswith("node 'n1' is already running: ")
        assert f"pid {os.getpid()} on {socket.gethostname()} since " in message and "\n" not in message
        claim_node(url, "n2").release()  # another node on the same database is another name
    claim_node(url, "n1").release()  # released on exit
    assert (tmp_path / "data" / "billing.db.n1.lock").exists()  # kept: removing it would race


def test_the_claim_of_a_node_is_held_by_another_process_and_dies_with_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "claimed\n"
        with pytest.raises(NodeClaimed, match=f"pid {holder.pid} on "):
            claim_node(url, "n1")
    finally:
        holder.send_signal(signal.SIGKILL)  # the node dies without releasing anything
        holder.wait(10)
    stale = json.loads((tmp_path / "billing.db.n1.lock").read_text())
    assert stale["pid"] == holder.pid  # the stale file names the dead holder, but its lock died with it
    claim_node(url, "n1").release()


def test_an_in_memory_database_is_claimed_in_the_process() -> None:
    with claim_node("sqlite://", "n1"), pytest.raises(NodeClaimed, match="in-memory database"):
        claim_node("sqlite:///:memory:", "n1")
    claim_node("sqlite://", "n1").release()


@pytest.mark.integration
def test_a_second_claim_of_a_postgresql_node_fails_naming_the_holder(pg_url: str) -> None:
    claim = claim_node(pg_url, "n1")
    try:
        with pytest.raises(NodeClaimed) as refused:
            claim_node(pg_url, "n1")
        assert f"pid {os.getpid()} on {socket.gethostname()} since " in str(refused.value)
        assert "advisory lock" in str(refused.value)
        claim.check()  # still ours
    finally:
        claim.release()
    claim_node(pg_url, "n1").release()


def _terminate_claim_sessions(url: str) -> int:
    """Drop the claim's connection as an administrator (or a server restart) would."""
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name LIKE 'switchd node=n1 %'"
            )
        )
    admin.dispose()
    return int(killed or 0)


@pytest.mark.integration
def test_a_postgresql_claim_whose_connection_drops_is_taken_again_or_fails_loudly(pg_url: str) -> None:
    claim = claim_node(pg_url, "n1")
    try:
        assert _terminate_claim_sessions(pg_url) == 1
        claim.check()  # reconnects and takes the lock again
        with pytest.raises(NodeClaimed):
            claim_node(pg_url, "n1")  # it is really held again

        assert _terminate_claim_sessions(pg_url) == 1
        usurper = claim_node(pg_url, "n1")  # someone else took the name meanwhile
        try:
            with pytest.raises(NodeClaimed, match="lost the claim on node 'n1'.*already running: pid"):
                claim.check()
        finally:
            usurper.release()
    finally:
        claim.release()
