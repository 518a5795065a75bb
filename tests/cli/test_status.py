"""`switchd status` and `switchd top` against the fake API: what they show, --json, and no daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from switchd.cli import main

from ._fake_api import FakeApi, Reply
from ._processes import exited_pid
from ._samples import CALLS, STATUS, TREE


def _serve_status(api: FakeApi) -> None:
    api.on("GET", "/status", Reply(STATUS))
    api.on("GET", "/tree", Reply(TREE))
    api.on("GET", "/calls", Reply(CALLS))


def _one_red_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and lines[0].startswith("switchd: ")
    return lines[0]


def test_status_shows_calls_rates_latency_billing_restarts_and_the_top_of_the_tree(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve_status(api)
    assert main(["status", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "itest" in out and "running, up 1h 02m 05s" in out
    assert "12 active" in out and "3.4 cps (10 s)" in out and "2.0 cps (1 min)" in out
    assert "p50 12.3 ms" in out and "p95 40.1 ms" in out and "p99 80.4 ms" in out
    assert "database connected; 3 CDR steps queued, 0 spooled, 0 quarantined" in out
    assert "events 2, router 1" in out  # restarts by name, zeros left out
    assert "capacity 4" in out
    assert "19 processes" in out  # 10 listed + 9 more call sessions the API summarised
    for name in ("events", "billing", "router", "calls", "sip"):
        assert name in out
    assert "listener" not in out  # status shows the application's children, top shows it all
    assert "(12 calls)" in out


def test_status_json_is_the_status_object_with_the_tree(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    _serve_status(api)
    assert main(["status", "--json", "--api", api.url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["calls"]["active"] == 12 and shown["billing"]["connected"] is True
    assert shown["tree"][0]["name"] == "switchd"


def test_status_shows_a_draining_node_and_a_database_outage(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    outage = {**STATUS, "draining": True,
              "billing": {"connected": False, "spooling": True, "queue_depth": 0, "spooled": 120, "quarantined": 1}}
    api.on("GET", "/status", Reply(outage))
    api.on("GET", "/tree", Reply(TREE))
    assert main(["status", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "draining" in out
    assert "database unavailable: CDRs go to the spool; 0 CDR steps queued, 120 spooled, 1 quarantined" in out


def test_status_survives_an_answer_with_missing_or_mistyped_fields(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("GET", "/status", Reply({"calls": "many", "uptime": "long", "restarts": [1], "billing": None}))
    api.on("GET", "/tree", Reply({"processes": [{"children": [7, {"name": 5}]}, "x"]}))
    assert main(["status", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "0 active" in out and "up -" in out


def test_top_once_renders_the_whole_tree_with_mailboxes_restarts_and_the_active_calls(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve_status(api)
    assert main(["top", "--once", "--calls", "5", "--api", api.url]) == 0
    out = capsys.readouterr().out
    cells = [[c.strip(" ├└│─") for c in line.split("│")] for line in out.splitlines() if "<0." in line]
    rows = {row[0]: row for row in cells}
    assert "└─ listener" in out and "├─ events" in out
    assert rows["billing"][-2:] == ["7", "0"]  # mailbox, restarts
    assert rows["router"][-2:] == ["0", "1"]
    assert rows["calls"][3] == "running (12 calls)"
    assert "c0@host" in out and "answered" in out and "+442071234567" in out and "1m 01s" in out
    assert "q or Ctrl-C quits" in out
    assert api.requests[-1].query == {"limit": "5"}


def test_top_frames_asks_again_each_interval(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    _serve_status(api)
    assert main(["top", "--frames", "3", "--interval", "0.01", "--api", api.url]) == 0
    assert capsys.readouterr().out.count("active calls") == 3
    assert api.paths().count("GET /status") == 3


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "switchd.toml"
    path.write_text(f'[api]\nlisten = "127.0.0.1:{port}"\n')
    return path


@pytest.mark.parametrize("command", [["status"], ["top", "--once"], ["status", "--json"]])
def test_no_daemon_and_no_pidfile_says_it_is_not_running_and_how_to_start_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    port = _closed_port()
    assert main([*command, "--config", str(_config(tmp_path, port))]) == 1
    line = _one_red_line(capsys.readouterr().err)
    assert "switchd is not running" in line and f"127.0.0.1:{port}" in line and "no pidfile" in line
    assert "switchd run" in line


def test_a_stale_pidfile_says_the_daemon_has_exited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exited = exited_pid()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "switchd.pid").write_text(f"{exited}\n")
    assert main(["status", "--config", str(_config(tmp_path, _closed_port()))]) == 1
    line = _one_red_line(capsys.readouterr().err)
    assert f"names pid {exited}, which has exited" in line and "switchd run" in line


def test_a_live_daemon_that_does_not_answer_is_told_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], live_switchd: int
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "switchd.pid").write_text(f"{live_switchd}\n")
    assert main(["status", "--config", str(_config(tmp_path, _closed_port()))]) == 1
    line = _one_red_line(capsys.readouterr().err)
    assert f"switchd runs (pid {live_switchd}) but its API does not answer" in line and "--api" in line


def test_without_any_configuration_the_default_address_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], api: FakeApi
) -> None:
    monkeypatch.chdir(tmp_path)  # no config/switchd.toml here
    _serve_status(api)
    assert main(["status", "--api", api.url]) == 0
    assert main(["status", "--api", "nonsense"]) == 2
    assert "is not http://HOST:PORT" in _one_red_line(capsys.readouterr().err)


def test_the_configured_token_is_sent(tmp_path: Path, api: FakeApi) -> None:
    _serve_status(api)
    config = tmp_path / "switchd.toml"
    config.write_text(f'[api]\nlisten = "{api.url.removeprefix("http://")}"\ntoken = "tok-0123456789abcdef"\n')
    assert main(["status", "--config", str(config)]) == 0
    assert {r.headers.get("authorization") for r in api.requests} == {"Bearer tok-0123456789abcdef"}


def test_a_refused_token_is_one_line_exit_2(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/status", Reply({"error": {"code": "unauthorized", "detail": "a bearer token is required"}}, 401))
    assert main(["status", "--api", api.url]) == 2
    assert "a bearer token is required" in _one_red_line(capsys.readouterr().err)


_ON_A_TERMINAL = ("import fcntl, runpy, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                  "sys.argv[0] = 'switchd'; runpy.run_module('switchd', run_name='__main__', alter_sys=True)")


def _read_until(fd: int, marker: bytes, timeout: float = 30.0, *, until_eof: bool = False) -> bytes:
    """What the terminal shows until `marker` appears (or, `until_eof`, until the process has gone)."""
    import os
    import select
    import time

    seen = b""
    deadline = time.monotonic() + timeout
    while until_eof or marker not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"no {marker!r} within {timeout}s; got {seen[-500:]!r}"
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side of the pty closed
            break
        if not chunk:
            break
        seen += chunk
    return seen


@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_top_on_a_terminal_refreshes_until_q_or_ctrl_c_and_exits_0(api: FakeApi, key: bytes) -> None:
    import os
    import pty

    _serve_status(api)
    controller, terminal = pty.openpty()
    # a session of its own whose controlling terminal is the pty, so ^C there is its SIGINT
    proc = subprocess.Popen([sys.executable, "-c", _ON_A_TERMINAL, "top", "--interval", "0.05", "--api", api.url],
                            stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
    try:
        os.close(terminal)
        _read_until(controller, b"Ctrl-C quits")
        while api.paths().count("GET /status") < 3:  # refreshed twice: it is live
            _read_until(controller, b"Ctrl-C quits")
        os.write(controller, key)
        _read_until(controller, b"", timeout=15, until_eof=True)  # drained, so it never blocks writing
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(controller)
