"""`alembic` from anywhere finds the database switchd uses, and a read never creates one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from switchd.billing import current_revision, head_revision, open_engine

REPO = Path(__file__).resolve().parents[2]
ALEMBIC = Path(sys.executable).with_name("alembic")


def _alembic(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SWITCHD_BILLING_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run([str(ALEMBIC), "-c", str(REPO / "alembic.ini"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_alembic_current_outside_the_repository_creates_nothing_in_the_working_directory(tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    shipped = REPO / "data" / "switchd.sqlite3"  # the database config/switchd.toml names
    existed = shipped.exists()
    result = _alembic(cwd, "current")
    assert list(cwd.iterdir()) == [], result.stderr
    assert shipped.exists() == existed
    if not existed:
        assert result.returncode != 0 and f"no billing database at {shipped}" in result.stderr


def test_alembic_upgrade_migrates_the_database_of_the_switchd_configuration_it_is_given(
    tmp_path: Path, etc_config: Path
) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    config = etc_config
    result = _alembic(cwd, "-x", f"config={config}", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert list(cwd.iterdir()) == []
    engine = open_engine(f"sqlite:///{tmp_path / 'var' / 'switchd.sqlite3'}")
    assert current_revision(engine) == head_revision()
    engine.dispose()
    current = _alembic(cwd, "-x", f"config={config}", "current")
    assert current.returncode == 0 and head_revision() in current.stdout


def test_alembic_current_of_a_database_not_yet_created_says_so_and_creates_nothing(
    tmp_path: Path, etc_config: Path
) -> None:
    config = etc_config
    result = _alembic(tmp_path, "-x", f"config={config}", "current")
    database = tmp_path / "var" / "switchd.sqlite3"
    assert result.returncode != 0
    assert f"no billing database at {database}" in result.stderr and "switchd db upgrade" in result.stderr
    assert not (tmp_path / "var").exists()


def test_a_url_still_wins_over_the_configuration(tmp_path: Path, etc_config: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = _alembic(tmp_path, "-x", f"url={url}", "-x", f"config={etc_config}", "upgrade", "head")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.db").exists() and not (tmp_path / "var").exists()
