"""The [billing] keys of the node's configuration that the store's pipeline takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchd.config import ConfigError, load


def test_the_write_deadline_and_heartbeat_interval_have_defaults_and_must_be_positive(tmp_path: Path) -> None:
    config = tmp_path / "switchd.toml"
    config.write_text("[billing]\nheartbeat_interval = 5\n")
    billing = load(config).billing
    assert (billing.write_deadline, billing.heartbeat_interval) == (0.25, 5.0)
    config.write_text("[billing]\nwrite_deadline = 0\n")
    with pytest.raises(ConfigError, match=r"billing\.write_deadline.*must be > 0"):
        load(config)
