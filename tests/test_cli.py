"""The console script: --version/--help, and run, sim, call, load and cdr as a user meets them."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
from defusedxml import ElementTree

from switchd import __version__
from switchd.billing import (
    BillingStore,
    BillingStoreConfig,
    CdrAnswer,
    CdrClose,
    CdrOpen,
    Disposition,
    HangupParty,
    answer_cdr,
    close_cdr,
    open_cdr,
)
from switchd.cli import JsonLinesFormatter, OneLineFormatter, main
from switchd.config import Config
from switchd.sim import Answer, Behaviours, Busy, NeverAnswer, Reject, start_sim


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"switchd {__version__}"


def test_help_runs_as_a_real_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "switchd", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert "usage: switchd" in result.stdout
    for command in ("run", "sim", "call", "load", "cdr"):
        assert command in result.stdout


def _one_red_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("switchd: ")
    return lines[0]


def test_a_bad_argument_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--rate", "0", "--calls", "5", "--hold", "1"]) == 2
    line = _one_red_line(capsys.readouterr().err)
    assert "--rate" in line and "'0' is not a positive number" in line
    assert main(["call", "1000"]) == 2
    assert "required: TO" in _one_red_line(capsys.readouterr().err)
    assert main(["call", "1000", "2000", "--server", "127.0.0.1:http"]) == 2
    assert "'127.0.0.1:http'" in _one_red_line(capsys.readouterr().err)


# --- call ----------------------------------------------------------------------------------------------


async def test_call_against_a_simulator_prints_the_ladder_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], Behaviours(default=Answer(ring=0.05)), name="cli-sim")
        server = f"127.0.0.1:{sim.addresses[0][1]}"
        with trio.fail_after(10):
            code = await trio.to_thread.run_sync(main, ["call", "1000", "2000", "--server", server, "--hold", "0.05"])
        nursery.cancel_scope.cancel()
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    ladder = [line for line in lines if "──" in line]
    assert [line.split("──")[-1].strip(" ▶│") for line in ladder] == [
        "INVITE", "100 Trying", "180 Ringing", "200 OK", "ACK", "BYE", "200 OK (BYE)",
    ]
    assert "▶ INVITE" in ladder[0] and "◀" in ladder[1]
    assert ladder[0].strip().startswith("+0.000s")
    assert lines[-1].startswith("answered: 200 OK, setup ") and lines[-1].endswith("caller hung up")


async def test_a_busy_call_still_got_a_final_answer_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], Behaviours(default=Busy()), name="cli-busy")
        with trio.fail_after(10):
            code = await trio.to_thread.run_sync(main, ["call", "1000", "2000", "--server",
                                                        f"127.0.0.1:{sim.addresses[0][1]}"])
        nursery.cancel_scope.cancel()
    assert code == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("rejected: 486 Busy Here")


async def test_a_call_that_times_out_exits_1_even_when_its_cancel_got_a_487(capsys: pytest.CaptureFixture[str]) -> None:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], Behaviours(default=NeverAnswer()), name="cli-ring")
        with trio.fail_after(10):
            code = await trio.to_thread.run_sync(main, ["call", "1000", "2000", "--timeout", "0.3", "--server",
                                                        f"127.0.0.1:{sim.addresses[0][1]}"])
        nursery.cancel_scope.cancel()
    out = capsys.readouterr().out
    assert "487 Request Terminated" in out  # the answer to our CANCEL, not a final answer to the call
    assert out.splitlines()[-1].startswith("timeout: ")
    assert code == 1


@pytest.mark.parametrize(("argv", "named"), [
    (["call", "1000", "a b"], "argument TO: 'a b' is not a SIP user part"),
    (["call", 'x"y', "2000"], "argument FROM: 'x\"y' is not a SIP user part"),
    (["load", "--rate", "1", "--calls", "1", "--hold", "0", "--to", "a@bxx"], "argument --to: 'a@bxx' is not"),
    (["cdr", "--callee", "x"], "argument --callee: 'x' is not a number prefix"),
])
def test_a_bad_number_is_refused_naming_the_option_not_an_internal_name(
        argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    line = _one_red_line(capsys.readouterr().err)
    assert named in line
    assert "make_request" not in line and "callee_prefix" not in line


async def test_call_to_a_closed_port_is_one_error_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    code = await trio.to_thread.run_sync(main, ["call", "1000", "2000", "--server", f"127.0.0.1:{port}"])
    captured = capsys.readouterr()
    assert code == 1
    assert _one_red_line(captured.err) == f"switchd: cannot connect to 127.0.0.1:{port}: Connection refused"
    assert captured.out == ""


# --- load ----------------------------------------------------------------------------------------------


async def test_load_prints_outcomes_and_percentiles(capsys: pytest.CaptureFixture[str]) -> None:
    behaviours = Behaviours(default=Answer(ring=0.0), prefixes={"1": Busy()})
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], behaviours, name="cli-load")
        args = ["load", "--rate", "100", "--calls", "20", "--hold", "0.01", "--to", "xx",
                "--server", f"127.0.0.1:{sim.addresses[0][1]}"]
        with trio.fail_after(20):
            code = await trio.to_thread.run_sync(main, args)
        nursery.cancel_scope.cancel()
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split("│")[0].strip(): line.split("│")[1].strip() for line in out.splitlines()
            if line.count("│") == 2 and line.split("│")[0].strip().isdigit()}
    assert rows == {"200": "10", "486": "10"}
    assert "p50" in out and "p95" in out and "p99" in out and " ms" in out
    assert "20 calls in " in out and ": 20 completed, " in out and "completed calls/s (asked 100" in out


async def test_load_counts_timeouts_remote_ends_and_503s_apart_and_reports_completed_calls_per_second(
        capsys: pytest.CaptureFixture[str]) -> None:
    behaviours = Behaviours(default=Answer(ring=0.0), prefixes={
        "1": NeverAnswer(), "2": Answer(ring=0.0, hangup_after=0.01), "3": Reject(code=503)})
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], behaviours, name="cli-load-mix")
        args = ["load", "--rate", "200", "--calls", "40", "--hold", "0.5", "--to", "xx", "--timeout", "0.5",
                "--server", f"127.0.0.1:{sim.addresses[0][1]}"]
        with trio.fail_after(20):
            code = await trio.to_thread.run_sync(main, args)
        nursery.cancel_scope.cancel()
    out = capsys.readouterr().out
    rows = {line.split("│")[0].strip(): line.split("│")[1].strip() for line in out.splitlines()
            if line.count("│") == 2 and line.split("│")[1].strip().isdigit()}
    assert rows == {"200": "10", "timeout": "10", "200 remote-ended": "10", "503": "10"}
    summary = out.splitlines()[-1]
    assert ": 30 completed, " in summary and "completed calls/s (asked 200, INVITEs sent at " in summary
    assert summary.endswith("10 timeout, 10 remote-ended, 10 503")
    assert code == 1  # ten calls got no final answer


# --- run -----------------------------------------------------------------------------------------------


def test_run_with_a_bad_config_is_one_line_naming_key_and_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "switchd.toml"
    config.write_text('node = "n1"\n\n[sip]\nlisen = "127.0.0.1:5060"\n')
    assert main(["run", "--config", str(config)]) == 2
    line = _one_red_line(capsys.readouterr().err)
    assert f"{config}:4" in line and "sip.lisen" in line


def test_run_logs_the_configuration_file_it_runs_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import switchd.app

    config = tmp_path / "switchd.toml"
    config.write_text('data_dir = "data"\n[sip]\nlisten = "127.0.0.1:5999"\n')
    async def serve(*args: object, **kwargs: object) -> int:  # everything up to the tree
        return 0

    monkeypatch.setattr(switchd.app, "serve", serve)
    with caplog.at_level(logging.INFO, logger="switchd.app"):
        assert main(["run", "--config", str(config)]) == 0
    assert f"configuration {config}" in caplog.text


def test_run_hands_the_loaded_config_to_the_daemon_and_returns_its_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import switchd.app

    config = tmp_path / "switchd.toml"
    config.write_text('node = "n7"\n[sip]\nlisten = "127.0.0.1:5099"\n')
    seen: list[tuple[Config, int]] = []

    def fake_run_daemon(cfg: Config, **_: object) -> int:
        seen.append((cfg, logging.getLogger().level))
        return 3

    monkeypatch.setattr(switchd.app, "run_daemon", fake_run_daemon)
    assert main(["run", "--config", str(config), "-v"]) == 3
    [(cfg, level)] = seen
    assert (cfg.node, cfg.sip.listen.port, cfg.path) == ("n7", 5099, config)
    assert level == logging.DEBUG  # run logs INFO; -v one step more


def test_run_without_a_config_file_names_the_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    line = _one_red_line(capsys.readouterr().err)
    assert str(tmp_path / "config" / "switchd.toml") in line and "cannot read" in line


def test_run_on_a_busy_port_is_one_line_naming_the_address_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "switchd.toml"
        config.write_text(f'data_dir = "data"\n[sip]\nlisten = "127.0.0.1:{port}"\n')
        with caplog.at_level(logging.INFO):
            assert main(["run", "--config", str(config)]) == 2
    line = _one_red_line(capsys.readouterr().err)
    assert f"sip.listen = 127.0.0.1:{port}" in line and "in use" in line
    assert not (tmp_path / "data").exists()  # no database, no spool: nothing was created


def test_run_with_a_bad_rate_deck_is_one_line_naming_file_and_line_before_any_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "rates.csv").write_text("prefix,description,price_per_minute\n44,UK,not-a-price\n")
    config = tmp_path / "switchd.toml"
    config.write_text('data_dir = "data"\n[sip]\nlisten = "127.0.0.1:5999"\n[billing]\nrate_deck = "rates.csv"\n')
    assert main(["run", "--config", str(config)]) == 2
    line = _one_red_line(capsys.readouterr().err)
    assert f"billing.rate_deck: {tmp_path / 'rates.csv'}:2" in line
    assert not (tmp_path / "data").exists()
    assert "least_cost routing without prices" not in caplog.text  # the default policy needs no prices


# --- cdr -----------------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


async def _write_cdrs(db: Path, spool: Path) -> None:
    """Three calls through the BillingStore: answered (30 s), busy, cancelled."""
    config = BillingStoreConfig(url=f"sqlite:///{db}", node="cli-test", spool_dir=spool,
                                rate_deck=Path(__file__).resolve().parent.parent / "config" / "rates.csv")
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        await open_cdr(CdrOpen(call_id="call-answered", caller="14155550199", callee="14155550100", setup_at=T0))
        await answer_cdr(CdrAnswer(call_id="call-answered", at=T0 + timedelta(seconds=2)))
        await close_cdr(CdrClose(call_id="call-answered", end_at=T0 + timedelta(seconds=32),
                                 disposition=Disposition.ANSWERED, sip_code=200, hangup_by=HangupParty.CALLER,
                                 gateway="gw1"))
        for minute, (call_id, disposition, code) in enumerate(
            [("call-busy", Disposition.BUSY, 486), ("call-cancelled", Disposition.CANCELLED, 487)], start=1
        ):
            at = T0 + timedelta(minutes=minute)
            await open_cdr(CdrOpen(call_id=call_id, caller="14155550199", callee="011442071234567", setup_at=at))
            await close_cdr(CdrClose(call_id=call_id, end_at=at + timedelta(seconds=5), disposition=disposition,
                                     sip_code=code))
        nursery.cancel_scope.cancel()


@pytest.fixture
def cdr_config(tmp_path: Path) -> Path:
    """A config naming a migrated SQLite database with three CDRs written through billing."""
    db = tmp_path / "billing.sqlite3"
    trio.run(_write_cdrs, db, tmp_path / "spool")
    config = tmp_path / "switchd.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    return config


def test_cdr_as_csv_lists_every_record_with_its_fields(cdr_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdr", "--config", str(cdr_config), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["call_id"] for r in rows] == ["call-answered", "call-busy", "call-cancelled"]
    answered = rows[0]
    assert (answered["disposition"], answered["sip_code"], answered["callee"]) == ("ANSWERED", "200", "+14155550100")
    assert (answered["billable_ms"], answered["gateway"], answered["hangup_by"]) == ("30000", "gw1", "caller")
    assert [r["disposition"] for r in rows[1:]] == ["BUSY", "CANCELLED"]


def test_cdr_as_json_is_one_object_per_line(cdr_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdr", "--config", str(cdr_config), "--format", "json", "--disposition", "busy"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["call_id"], r["disposition"], r["sip_code"]) for r in records] == [("call-busy", "BUSY", 486)]


def test_cdr_as_xml_parses_and_filters_by_callee(cdr_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cdr", "--config", str(cdr_config), "--format", "xml", "--callee", "44"]) == 0
    root = ElementTree.fromstring(capsys.readouterr().out)
    assert root.tag == "cdrs"
    assert [c.findtext("call_id") for c in root.findall("cdr")] == ["call-busy", "call-cancelled"]
    assert {c.findtext("callee") for c in root.findall("cdr")} == {"+442071234567"}


def test_cdr_as_a_table_shows_each_record_and_honours_limit_and_time(
    cdr_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cdr", "--config", str(cdr_config)]) == 0
    out = capsys.readouterr().out
    for call_id in ("call-answered", "call-busy", "call-cancelled"):
        assert call_id in out
    [answered] = [line.split("│") for line in out.splitlines() if "call-answered" in line]
    cells = [cell.strip() for cell in answered]
    # 30 s of talk to 1415 (1/1 increments, 0.008/min in the sample deck): 30 s billed, 0.004 USD
    assert cells[2:8] == ["+14155550100", "ANSWERED", "200", "30.000", "30", "0.004000 USD"]
    assert out.splitlines()[-1] == "3 CDRs"
    assert main(["cdr", "--config", str(cdr_config), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "call-answered" in out and "call-busy" not in out
    assert out.splitlines()[-1].startswith("1 CDR; more match")
    assert main(["cdr", "--config", str(cdr_config), "--since", "2026-11-25T09:00:30"]) == 0
    out = capsys.readouterr().out
    assert "call-answered" not in out and out.splitlines()[-1] == "2 CDRs"


def test_cdr_into_a_closed_pipe_stops_quietly(
    cdr_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `switchd cdr --format csv | head` once head has exited
    with open(write_end, "w", encoding="utf-8") as closed_pipe:
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        assert main(["cdr", "--config", str(cdr_config), "--format", "csv"]) == 1
        monkeypatch.undo()
    assert capsys.readouterr().err == ""


def test_cdr_errors_are_one_line(tmp_path: Path, cdr_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "elsewhere.toml"
    missing.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "none.sqlite3"}"\n')
    assert main(["cdr", "--config", str(missing)]) == 1
    assert "no billing database at" in _one_red_line(capsys.readouterr().err)
    assert main(["cdr", "--config", str(cdr_config), "--since", "yesterday"]) == 2
    assert "'yesterday' is not an ISO 8601" in _one_red_line(capsys.readouterr().err)
    assert main(["cdr", "--config", str(cdr_config), "--format", "csv", "--limit", "5"]) == 2
    assert "--limit applies to --format table" in _one_red_line(capsys.readouterr().err)
    assert main(["cdr", "--config", str(cdr_config), "--caller", "abc"]) == 2
    assert "'abc' is not a number prefix" in _one_red_line(capsys.readouterr().err)


# --- logging -------------------------------------------------------------------------------------------


def test_log_records_off_a_terminal_are_json_lines_with_their_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "switchd.sim", "levelname": "INFO", "msg": "call %s over",
                                    "args": ("c1",), "call_id": "c1"})
    entry = json.loads(JsonLinesFormatter().format(record))
    assert (entry["message"], entry["logger"], entry["level"], entry["call_id"]) == (
        "call c1 over", "switchd.sim", "INFO", "c1",
    )


def test_log_records_off_a_terminal_are_one_readable_line_with_their_extra_fields() -> None:
    try:
        raise OSError(98, "Address already in use")
    except OSError:
        record = logging.makeLogRecord({"name": "switchd.otp", "levelname": "ERROR", "msg": "start failed:\n%s",
                                        "args": ("listener",), "call_id": "c1", "exc_info": sys.exc_info()})
    line = OneLineFormatter().format(record)
    assert "\n" not in line
    assert line.endswith("ERROR switchd.otp: start failed: | listener [call_id=c1] | OSError: [Errno 98] Address already in use")
    verbose = OneLineFormatter(tracebacks=True).format(record)
    assert "\n" not in verbose and "Traceback (most recent call last):" in verbose


def test_log_format_json_is_chosen_by_flag_whatever_the_stream(tmp_path: Path) -> None:
    config = tmp_path / "missing.toml"
    assert main(["cdr", "--config", str(config), "--log-format", "json"]) == 2
    assert isinstance(logging.getLogger().handlers[-1].formatter, JsonLinesFormatter)


# --- sim -----------------------------------------------------------------------------------------------


def _wait_for_line(proc: subprocess.Popen[bytes], marker: str, timeout: float = 30.0) -> str:
    """The first stdout line of `proc` containing `marker` (fails after `timeout` s or at its exit).

    Reads the pipe's file descriptor directly: a buffered reader would hide lines from select().
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
        for line in seen.decode(errors="replace").splitlines():
            if marker in line:
                return line
    raise AssertionError(f"no {marker!r} line from {proc.args!r}; exit status {proc.poll()}; output {seen!r}")


def test_sim_serves_calls_until_sigint_and_refuses_a_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    command = [sys.executable, "-m", "switchd", "sim", "--listen", "127.0.0.1:0", "--route", "486=busy",
               "--default", "answer:ring=0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proc:
        try:
            line = _wait_for_line(proc, "listening on")
            address = line.split("listening on ")[1].split()[0]
            assert main(["call", "1000", "4861", "--server", address]) == 0
            assert capsys.readouterr().out.splitlines()[-1].startswith("rejected: 486 Busy Here")
            assert main(["call", "1000", "2000", "--server", address, "--hold", "0"]) == 0
            assert capsys.readouterr().out.splitlines()[-1].startswith("answered: 200 OK")
            second = subprocess.run([*command[:5], address], capture_output=True, text=True, timeout=60, check=False)
            assert second.returncode == 1
            assert _one_red_line(second.stderr) == f"switchd: cannot listen on {address}: Address already in use"
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
