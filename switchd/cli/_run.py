"""`switchd run`: the daemon in the foreground (switchd.app.run_daemon), holding its pidfile."""

from __future__ import annotations

import argparse
import logging
from functools import partial
from pathlib import Path

from ._common import CONFIG_HELP, EXIT_USAGE, CliError, Commands, Parser, load_config
from ._pidfile import check_pidfile, pidfile


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`run`."""
    run = commands.add_parser("run", parents=[logging_options], help="run the softswitch daemon",
                              description="Run the softswitch: migrate the billing database, start the "
                                          "tree, serve SIP until SIGTERM/SIGINT.")
    run.add_argument("--config", metavar="FILE", type=Path, help=CONFIG_HELP)
    run.add_argument("--pidfile", metavar="FILE", type=Path,
                     help="write the process id here while running (default: [api] pidfile, "
                          "<data_dir>/switchd.pid)")
    run.add_argument("--workers", metavar="N|auto",
                     help="worker processes sharing the SIP port, each a node <node>.w<i> (default: "
                          "workers in the configuration, 1 = this process alone; auto = one per core; "
                          "see docs/scale.md)")
    run.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # worker I, started by the supervisor
    run.set_defaults(handler=_cmd_run, default_level=logging.INFO)


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    from switchd.app import (  # here, so the other commands do not import the whole daemon
        StartError,
        run_daemon,
    )
    from switchd.workers import die_with_supervisor, run_workers, worker_config, worker_count

    if args.worker is not None:  # one of `--workers N`: a node of its own name, on its parent's sockets
        die_with_supervisor()
        config = worker_config(config, args.worker)
        args.pidfile = None
    try:
        count = 1 if args.worker is not None else worker_count(args.workers or config.workers)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    path = args.pidfile if args.pidfile is not None else config.api.pidfile
    check_pidfile(path)  # a running daemon of this configuration is named before its busy port is
    try:
        if count > 1:
            return run_workers(config, count, args=_logging_args(args), hold=partial(pidfile, path))
        return run_daemon(config, hold=partial(pidfile, path))  # written once nothing refused the start
    except StartError as exc:  # found before anything was created: one line, as a bad configuration
        raise CliError(f"cannot start: {exc}", EXIT_USAGE) from None


def _logging_args(args: argparse.Namespace) -> list[str]:
    """The logging options of this `switchd run`, for its workers."""
    level = ["--log-level", args.log_level] if getattr(args, "log_level", None) else []
    return [*level, *(["-v"] * args.verbose), "--log-format", args.log_format]
