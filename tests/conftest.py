"""Shared fixtures: real external components are required under CI=true, optional locally."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str, *extra_dirs: str) -> Path:
    """The path of executable `name`; skips the test locally when it is missing, fails it under CI.

    `extra_dirs` are searched too (e.g. /usr/lib/postgresql/15/bin, which is not on PATH).
    """
    search = os.pathsep.join([*extra_dirs, os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is not None:
        return Path(found)
    reason = f"{name} is not installed (Debian package needed; .ci/run installs it)"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """switchd.cli.main() installs a handler on the root logger; put the root logger back as it was."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
