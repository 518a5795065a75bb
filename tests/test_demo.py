"""`switchd demo`: the README's first command, run as a user runs it (a process, no terminal, any cwd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from switchd.billing import Cdr, CdrStatus, open_engine

REPO = Path(__file__).resolve().parent.parent


def _switchd(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "switchd", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_the_demo_places_every_kind_of_call_heals_and_loses_no_cdr_in_under_a_minute(tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere-else"  # not the repository: nothing may depend on the cwd
    elsewhere.mkdir()
    data = tmp_path / "demo"
    began = time.monotonic()
    done = _switchd("demo", "--dir", str(data), cwd=elsewhere, timeout=90)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    assert took < 60
    out = done.stdout
    assert "36 calls placed, 36 CDRs, 0 missing, 0 left open" in out and "no CDR lost" in out
    assert "killing call process" in out and "ANSWERED (killed)" in out
    assert "supervisor switchd restarted router (restart 1)" in out
    assert "router policy priority_weight -> least_cost" in out
    for seen in ("ANSWERED", "BUSY", "NO_ANSWER", "CANCELLED", "carrier-b", "billing summary", "ASR"):
        assert seen in out, seen
    assert "router gen_server restarts 1" in out  # the tree, healed
    assert f"switchd cdr --config {data / 'switchd.toml'}" in out
    assert list(elsewhere.iterdir()) == []

    # The count, from the database itself: one closed CDR per call placed.
    engine = open_engine(f"sqlite:///{data / 'data' / 'switchd.sqlite3'}")
    try:
        with Session(engine) as session:
            by_status = dict(session.execute(select(Cdr.status, func.count()).group_by(Cdr.status)).all())
            failovers = session.scalar(select(func.count()).where(Cdr.b_attempts == 2))
    finally:
        engine.dispose()
    assert by_status == {CdrStatus.CLOSED: 36}
    assert failovers == 6

    # ... and the command it prints to read them works as printed.
    listed = _switchd("cdr", "--config", str(data / "switchd.toml"), "--format", "json", cwd=elsewhere, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert len([json.loads(line) for line in listed.stdout.splitlines()]) == 36
