"""Fixtures of the CLI tests: a fake API server, a live process that looks like switchd, a configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._fake_api import FakeApi
from ._processes import sleeping


@pytest.fixture(autouse=True)
def no_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token in the developer's environment must not leak into the tests' requests."""
    monkeypatch.delenv("SWITCHD_API_TOKEN", raising=False)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        yield fake


@pytest.fixture
def live_switchd() -> Iterator[int]:
    """The pid of a live process whose command line is switchd's (argv[0] `switchd`; it only sleeps)."""
    with sleeping(argv0="switchd") as proc:
        yield proc.pid


@pytest.fixture
def etc_config(tmp_path: Path) -> Path:
    """etc/switchd.toml under tmp_path with data_dir ../var: its database is var/switchd.sqlite3."""
    path = tmp_path / "etc" / "switchd.toml"
    path.parent.mkdir()
    path.write_text('data_dir = "../var"\n')
    return path
