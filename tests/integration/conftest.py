"""Fixtures of the integration tests: switchd daemons owned by the test, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from ._daemon import GatewaySpec, RouteSpec, Switchd, write_config


class StartSwitchd(Protocol):
    def __call__(
        self,
        gateways: Sequence[GatewaySpec],
        *,
        routes: Sequence[RouteSpec] | None = None,
        timers: Mapping[str, float] | None = None,
        max_calls: int = 1000,
        name: str = "switchd",
    ) -> Switchd: ...


@pytest.fixture
def start_switchd(tmp_path: Path) -> Iterator[StartSwitchd]:
    """Starts `python -m switchd run` with a configuration written under tmp_path/<name>.

    Every daemon it started is ended at teardown: SIGTERM with a bounded wait, then SIGKILL.
    """
    started: list[Switchd] = []

    def start(
        gateways: Sequence[GatewaySpec],
        *,
        routes: Sequence[RouteSpec] | None = None,
        timers: Mapping[str, float] | None = None,
        max_calls: int = 1000,
        name: str = "switchd",
    ) -> Switchd:
        cfg = write_config(tmp_path / name, gateways, routes=routes, timers=timers, max_calls=max_calls)
        daemon = Switchd(cfg, tmp_path / f"{name}.stderr")
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        if daemon.alive():
            daemon.signal(15)
            try:
                daemon.wait(10.0)
            except AssertionError:
                daemon.kill()
