"""The console script's basic contract: --version and --help work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from switchd import __version__
from switchd.cli import main


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
