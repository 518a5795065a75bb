"""`switchd db`: the billing schema's Alembic migrations, on the database directly (no daemon).

    switchd db upgrade [REVISION] [--config FILE | --db URL]   to REVISION (default head)
    switchd db current [--json] [--config FILE | --db URL]     where the database is
    switchd db history [--json] [--config FILE | --db URL]     every revision, newest first

`current` and `history` never create a database; `upgrade` creates a SQLite file and its
directory. `switchd run` upgrades to head by itself at start, so `upgrade` is for preparing a
database before the first start (or a PostgreSQL one several nodes will share); it refuses while
the daemon of this configuration runs (its pidfile names a live switchd).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from switchd.billing import (
    MigrationError,
    alembic_config,
    current_revision,
    head_revision,
    open_engine,
    upgrade,
)

from ._common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    Commands,
    Parser,
    actions_of,
    database_options,
    database_url,
    load_config,
    require_database,
    sqlite_file,
    stdout,
)
from ._logging import logging_options as quiet_logging_options
from ._pidfile import is_running_switchd, read_pid


@dataclass(frozen=True, slots=True)
class Revision:
    """One migration: its id, the one before it, and the first line of its docstring."""

    revision: str
    down_revision: str | None
    doc: str


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`db upgrade|current|history`."""
    actions = actions_of(commands, "db", [logging_options], help="billing schema migrations (Alembic)",
                         description="The billing database's schema, on the database itself: the daemon need "
                                     "not run.")
    up = actions.add_parser("upgrade", parents=[quiet_logging_options(suppress=True)],
                            help="migrate to REVISION (default head)")
    up.add_argument("revision", metavar="REVISION", nargs="?", default="head",
                    help="a revision id, or head (default)")
    up.set_defaults(handler=_cmd_upgrade)
    current = actions.add_parser("current", parents=[quiet_logging_options(suppress=True)],
                                 help="the revision the database is at")
    current.set_defaults(handler=_cmd_current)
    history = actions.add_parser("history", parents=[quiet_logging_options(suppress=True)],
                                 help="every revision, newest first")
    history.set_defaults(handler=_cmd_history)
    for parser in (up, current, history):
        database_options(parser)
    for parser in (current, history):
        parser.add_argument("--json", action="store_true", help="as JSON")


def revisions() -> list[Revision]:
    """The billing migrations, newest first."""
    script = ScriptDirectory.from_config(alembic_config())
    found = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        found.append(Revision(rev.revision, down if isinstance(down, str) or down is None else ",".join(down),
                              (rev.doc or "").strip().splitlines()[0] if rev.doc else ""))
    return found


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _current(url: str) -> str | None:
    require_database(url)
    engine = open_engine(url)
    try:
        return current_revision(engine)
    except SQLAlchemyError as exc:
        raise CliError(f"cannot read {_shown(engine)}: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()


def _cmd_current(args: argparse.Namespace) -> int:
    url = database_url(args)
    revision, head = _current(url), head_revision()
    if args.json:
        print(json.dumps({"revision": revision, "head": head, "at_head": revision == head}))
        return 0
    if revision is None:
        stdout().print(f"{escape(url)}: no schema yet; `switchd db upgrade` creates it (head {head})")
    elif revision == head:
        stdout().print(f"{revision} (head)")
    else:
        stdout().print(f"{escape(revision)}; head is {head}: `switchd db upgrade` migrates it "
                       "(so does `switchd run`)")
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    known = revisions()
    path = sqlite_file(database_url(args))
    current = None if path is not None and not path.exists() else _current(database_url(args))
    if args.json:
        print(json.dumps({"current": current, "revisions": [asdict(r) for r in known]}, indent=2))
        return 0
    table = Table(show_edge=False, pad_edge=False)
    for name in ("revision", "after", "", "what it does"):
        table.add_column(name)
    for rev in known:
        marks = ", ".join(mark for mark, on in (("head", rev is known[0]), ("current", rev.revision == current))
                          if on)
        table.add_row(rev.revision, rev.down_revision or "-", marks, escape(rev.doc))
    stdout().print(table)
    return 0


def _cmd_upgrade(args: argparse.Namespace) -> int:
    if args.db is None:
        config = load_config(args.config)
        pid = read_pid(config.api.pidfile)
        if pid is not None and is_running_switchd(pid):
            raise CliError(f"switchd (pid {pid}) runs on this database: stop it first (it migrated the database "
                           "itself when it started)", EXIT_FAILURE)
    url = database_url(args)
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = open_engine(url)
    try:
        before = current_revision(engine)
        upgrade(engine, args.revision)
        after = current_revision(engine)
    except (MigrationError, SQLAlchemyError) as exc:
        raise CliError(f"{exc}".splitlines()[0]) from exc
    except CommandError as exc:  # an unknown revision: the user's argument
        raise CliError(f"db upgrade: {exc}", EXIT_USAGE) from exc
    finally:
        engine.dispose()
    moved = "already at" if before == after else f"{before or 'empty'} →"
    stdout().print(f"{escape(_shown(engine))}: {moved} {after}{' (head)' if after == head_revision() else ''}")
    return 0
