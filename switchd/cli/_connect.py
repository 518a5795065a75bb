"""How a command that talks to the daemon finds it: `--api`, `--config`, the pidfile.

Every such command takes `--config FILE` (default `config/switchd.toml` under the current
directory, when it exists) and `--api URL` (default: the configuration's `[api] listen`). The
configuration also gives the token and the pidfile. When nothing answers, the pidfile tells the
user which of three cases they are in: no daemon, a daemon that died (stale pidfile), or a daemon
that runs but listens elsewhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchd.config import Address, ApiConfig, Config, default_config_path

from ._client import ApiClient, DaemonUnreachable, api_address, reachable, token_for
from ._common import CONFIG_HELP, EXIT_FAILURE, CliError, Parser, load_config
from ._pidfile import is_running_switchd, read_pid


def api_options(*, suppress: bool = False) -> Parser:
    """The parent parser of every command that talks to the daemon: --config, --api.

    `suppress`: for a subcommand whose command has them too (see logging_options).
    """
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    options = Parser(add_help=False)
    options.add_argument("--config", metavar="FILE", type=Path, help=CONFIG_HELP, **unset)
    options.add_argument("--api", metavar="URL", **unset,
                         help="the daemon's API, http://HOST:PORT (default: [api] listen of the configuration)")
    return options


@dataclass(frozen=True, slots=True)
class Daemon:
    """Where the daemon should be: its API address, its configuration (if found) and its pidfile."""

    address: Address
    config: Config | None
    pidfile: Path | None

    @classmethod
    def locate(cls, args: argparse.Namespace) -> Daemon:
        """From --config/--api; a missing default configuration means the defaults."""
        config: Config | None = None
        if args.config is not None or default_config_path().is_file():
            config = load_config(args.config)
        api = config.api if config is not None else ApiConfig()
        address = api_address(args.api) if args.api else reachable(api.listen)
        return cls(address, config, config.api.pidfile if config is not None else None)

    def not_answering(self, exc: DaemonUnreachable) -> CliError:
        """Why nothing answers, as far as the pidfile tells: the error to show instead of `exc`."""
        url = f"http://{self.address}"
        if self.pidfile is None:
            return exc
        pid = read_pid(self.pidfile)
        if pid is None:
            return CliError(f"switchd is not running (nothing answers at {url}; no pidfile {self.pidfile}): "
                            "start it with `switchd run`", EXIT_FAILURE)
        if not is_running_switchd(pid):
            return CliError(f"switchd is not running (nothing answers at {url}; the pidfile {self.pidfile} "
                            f"names pid {pid}, which has exited): start it with `switchd run`", EXIT_FAILURE)
        return CliError(f"switchd runs (pid {pid}) but its API does not answer at {url}: is its [api] listen "
                        "the one in this configuration? (or give --api URL)", EXIT_FAILURE)


@contextmanager
def api_client(args: argparse.Namespace) -> Iterator[ApiClient]:
    """A client of the daemon `args` point at; a failure to reach it is explained (`not_answering`)."""
    daemon = Daemon.locate(args)
    try:
        with ApiClient(daemon.address, token=token_for(daemon.config)) as client:
            yield client
    except DaemonUnreachable as exc:
        raise daemon.not_answering(exc) from exc
