"""Fixtures of the integration tests: switchd daemons owned by the test, stopped by PID."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from ._daemon import GatewaySpec, RouteSpec, Switchd, write_config


class StartSwitchd:
    """Starts `python -m switchd run` with a configuration written under tmp_path/<name>.

    Every daemon it started is ended at teardown: SIGTERM with a bounded wait, then SIGKILL.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Switchd] = []

    def __call__(
        self,
        gateways: Sequence[GatewaySpec],
        *,
        routes: Sequence[RouteSpec] | None = None,
        timers: Mapping[str, float] | None = None,
        max_calls: int = 1000,
        routes_file: bool = False,
        name: str = "switchd",
        sip: Mapping[str, object] | None = None,
        nofile: int | None = None,
        database_url: str | None = None,
        api: Mapping[str, object] | None = None,
        args: Sequence[str] = (),
    ) -> Switchd:
        """`args`: more `switchd run` options (e.g. ``("--workers", "2")``)."""
        cfg = write_config(self.tmp_path / name, gateways, routes=routes, timers=timers, max_calls=max_calls,
                           routes_file=routes_file, sip=sip, database_url=database_url, api=api)
        return self._start(Switchd(cfg, self.tmp_path / f"{name}.stderr", nofile=nofile, args=tuple(args)))

    def again(self, stopped: Switchd) -> Switchd:
        """A new daemon with the configuration (and so the database) of `stopped`, which has exited."""
        assert not stopped.alive(), "the first daemon still runs"
        return self._start(Switchd(stopped.cfg, stopped.stderr_path))

    def _start(self, daemon: Switchd) -> Switchd:
        self.started.append(daemon)
        return daemon.start()

    def stop_all(self) -> None:
        for daemon in self.started:
            if daemon.alive():
                daemon.signal(signal.SIGTERM)
                try:
                    daemon.wait(10.0)
                except AssertionError:
                    daemon.kill()


@pytest.fixture
def start_switchd(tmp_path: Path) -> Iterator[StartSwitchd]:
    starter = StartSwitchd(tmp_path)
    yield starter
    starter.stop_all()
