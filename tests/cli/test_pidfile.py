"""`switchd run` holds its pidfile while the daemon runs; a live one refuses, a stale one is replaced."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from switchd.cli import main
from switchd.cli._pidfile import is_running_switchd, read_pid
from switchd.config import Config

from ._processes import exited_pid, sleeping

Hold = Callable[[], AbstractContextManager[object]]  # what switchd run hands run_daemon: the pidfile


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "switchd.toml"
    path.write_text('node = "n1"\n')
    return path


@pytest.fixture
def daemon_seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Config, int | None, Path]]:
    """Replace run_daemon: record the configuration and what the pidfile held while it ran."""
    import switchd.app

    seen: list[tuple[Config, int | None, Path]] = []

    def fake_run_daemon(cfg: Config, *, hold: Hold) -> int:
        with hold():
            seen.append((cfg, read_pid(cfg.api.pidfile), cfg.api.pidfile))
        return 0

    monkeypatch.setattr(switchd.app, "run_daemon", fake_run_daemon)
    return seen


def test_run_writes_its_pid_under_the_data_dir_while_the_daemon_runs_and_removes_it_after(
    config_file: Path, daemon_seen: list[tuple[Config, int | None, Path]]
) -> None:
    assert main(["run", "--config", str(config_file)]) == 0
    [(_, held, path)] = daemon_seen
    assert path == config_file.parent / "data" / "switchd.pid"
    assert held == os.getpid()
    assert not path.exists()


def test_run_pidfile_option_overrides_the_configuration(
    config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import switchd.app

    chosen = tmp_path / "run" / "elsewhere.pid"
    held: list[int | None] = []

    def fake_run_daemon(cfg: Config, *, hold: Hold) -> int:
        with hold():
            held.append(read_pid(chosen))
        return 0

    monkeypatch.setattr(switchd.app, "run_daemon", fake_run_daemon)
    assert main(["run", "--config", str(config_file), "--pidfile", str(chosen)]) == 0
    assert held == [os.getpid()] and not chosen.exists()


def test_the_pidfile_is_removed_when_the_daemon_fails_too(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import switchd.app

    def crash(cfg: Config, *, hold: Hold) -> int:
        with hold():
            raise RuntimeError("boom")

    monkeypatch.setattr(switchd.app, "run_daemon", crash)
    with pytest.raises(RuntimeError):
        main(["run", "--config", str(config_file)])
    assert not (config_file.parent / "data" / "switchd.pid").exists()


def test_a_pidfile_naming_a_running_switchd_refuses_the_start_and_is_left_alone(
    config_file: Path, live_switchd: int, daemon_seen: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file.parent / "data" / "switchd.pid"
    path.parent.mkdir()
    path.write_text(f"{live_switchd}\n")
    assert main(["run", "--config", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert f"names pid {live_switchd}" in err and "--pidfile" in err and "Traceback" not in err
    assert daemon_seen == []
    assert read_pid(path) == live_switchd


def test_a_stale_pidfile_is_replaced(config_file: Path, daemon_seen: list[tuple[Config, int | None, Path]]) -> None:
    path = config_file.parent / "data" / "switchd.pid"
    path.parent.mkdir()
    path.write_text(f"{exited_pid()}\n")
    assert main(["run", "--config", str(config_file)]) == 0
    assert daemon_seen[0][1] == os.getpid()
    assert not path.exists()


def test_a_pidfile_that_cannot_be_written_is_one_line_exit_2(
    config_file: Path, tmp_path: Path, daemon_seen: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    assert main(["run", "--config", str(config_file), "--pidfile", str(tmp_path / "file" / "x.pid")]) == 2
    assert "cannot write the pidfile" in capsys.readouterr().err
    assert daemon_seen == []


def test_only_a_running_process_that_is_switchd_counts(live_switchd: int) -> None:
    assert is_running_switchd(live_switchd)
    with sleeping("something-else") as other:
        assert not is_running_switchd(other.pid)  # a reused process id
    with sleeping("/tmp/switchd-venv/x", "--config", "switchd.toml") as other:
        assert not is_running_switchd(other.pid)  # "switchd" in a path is not switchd
    assert not is_running_switchd(other.pid)  # exited (and reaped)


@pytest.mark.parametrize("text", ["", "abc", "-5", "0", "12 13"])
def test_a_pidfile_without_a_process_id_reads_as_none(tmp_path: Path, text: str) -> None:
    (tmp_path / "p").write_text(text)
    assert read_pid(tmp_path / "p") is None
    assert read_pid(tmp_path / "missing") is None
