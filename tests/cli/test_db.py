"""`switchd db upgrade|current|history`: Alembic on the configured database, without the daemon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchd.billing import current_revision, head_revision, open_engine
from switchd.cli import main
from switchd.cli._db import revisions

FIRST = "a18986d6a04f"  # the initial schema


@pytest.fixture
def config(etc_config: Path) -> Path:
    return etc_config


def _database(config: Path) -> Path:
    return config.parent.parent / "var" / "switchd.sqlite3"


def test_upgrade_creates_and_migrates_the_configured_database_to_head(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert f"empty → {head_revision()} (head)" in capsys.readouterr().out
    engine = open_engine(f"sqlite:///{_database(config)}")
    assert current_revision(engine) == head_revision()
    engine.dispose()
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert f"already at {head_revision()} (head)" in capsys.readouterr().out


def test_current_says_where_the_database_is_and_what_to_do(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", FIRST, "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["db", "current", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == (f"{FIRST}; head is {head_revision()}: `switchd db upgrade` migrates "
                                               "it (so does `switchd run`)")
    assert main(["db", "current", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == {"revision": FIRST, "head": head_revision(), "at_head": False}
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["db", "current", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == f"{head_revision()} (head)"


def test_current_of_a_missing_database_creates_nothing(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "current", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"no billing database at {_database(config)}" in err and "switchd db upgrade" in err
    assert not _database(config).parent.exists()


def test_an_empty_database_has_no_schema_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.db"
    open_engine(f"sqlite:///{empty}").connect().close()
    assert main(["db", "current", "--db", f"sqlite:///{empty}"]) == 0
    assert "no schema yet" in capsys.readouterr().out


def test_history_lists_every_revision_newest_first_with_head_and_current(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "history", "--config", str(config)]) == 0  # no database: still the history
    out = capsys.readouterr().out
    known = revisions()
    assert [r.revision for r in known][-1] == FIRST and known[0].revision == head_revision()
    assert all(r.revision in out and r.doc.split(":")[0] in out for r in known)
    assert "current" not in out
    assert main(["db", "upgrade", FIRST, "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["db", "history", "--json", "--config", str(config)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["current"] == FIRST and [r["revision"] for r in shown["revisions"]] == [r.revision for r in known]
    assert main(["db", "history", "--config", str(config)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(FIRST))
    assert "current" in line


def test_an_unknown_revision_is_a_bad_argument(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade", "nosuchrev", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "nosuchrev" in err and "Traceback" not in err


def test_a_database_url_works_without_a_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'b.db'}"
    assert main(["db", "upgrade", "--db", url]) == 0
    assert main(["db", "current", "--db", url]) == 0
    assert f"{head_revision()} (head)" in capsys.readouterr().out


def test_upgrade_refuses_while_the_daemon_of_the_configuration_runs(
    config: Path, capsys: pytest.CaptureFixture[str], live_switchd: int
) -> None:
    pidfile = config.parent.parent / "var" / "switchd.pid"
    pidfile.parent.mkdir()
    pidfile.write_text(f"{live_switchd}\n")
    assert main(["db", "upgrade", "--config", str(config)]) == 1
    assert f"switchd (pid {live_switchd}) runs on this database" in capsys.readouterr().err
    assert not _database(config).exists()


def test_db_without_an_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db"]) == 2
    assert "an ACTION is missing" in capsys.readouterr().err
