"""`switchd accounts`: add, list, change and delete the accounts phones authenticate with.

    switchd accounts add    USER [--realm R] [--caller-id N] [--rate-plan P] [--disabled] [--password-stdin]
    switchd accounts list   [--realm R] [--format table|csv|json]
    switchd accounts passwd USER [--realm R] [--password-stdin]
    switchd accounts set    USER [--realm R] [--enable | --disable] [--caller-id N | --no-caller-id]
                            [--rate-plan P | --no-rate-plan]
    switchd accounts del    USER [--realm R]
    every one takes --config FILE (the database and realm of that configuration) or --db URL

It works on the database directly, as `switchd cdr` does (and `alembic` would): the daemon need
not run, and a running one picks a change up within ``auth.accounts_refresh`` seconds or at once on
SIGHUP. `add` creates the database (and migrates it to head) if needed.

The password is read from the terminal with no echo, twice (`getpass`), or — when stdin is not a
terminal, or with ``--password-stdin`` — as the first line of stdin, so a script can pipe it in.
It is never echoed, written to a log, put in an error message, or stored: only its HA1 digests
for MD5 and SHA-256 in the account's realm are (switchd.sip computes them).
"""

from __future__ import annotations

import argparse
import csv
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from switchd.billing import (
    AccountInfo,
    add_account,
    delete_account,
    list_accounts,
    open_engine,
    update_account,
    upgrade,
)
from switchd.config import Config
from switchd.sip import DigestAlgorithm, ha1

from ._common import EXIT_USAGE, CliError, Commands, Parser, actions_of, database_options, load_config, stdout
from ._logging import logging_options as quiet_logging_options


def add_parsers(commands: Commands, logging_options: Parser) -> None:
    """`accounts add|list|passwd|set|del`."""
    actions = actions_of(commands, "accounts", [logging_options], help="add, list, change and delete accounts",
                         description="Manage the accounts phones register and call with, in the database of "
                                     "the configuration (or --db): the daemon need not run.")

    def action(name: str, help_text: str, handler: Callable[[argparse.Namespace], int],
               *, user: bool = True) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[quiet_logging_options(suppress=True)], help=help_text,
                                    description=help_text)
        if user:
            parser.add_argument("user", metavar="USER", help="the username (the user part of the phone's address)")
        database_options(parser)
        parser.add_argument("--realm", help="the digest realm (default: auth.realm of the configuration)")
        parser.set_defaults(handler=handler)
        return parser

    add = action("add", "add an account; the password is read from the terminal or stdin", _add)
    add.add_argument("--caller-id", metavar="NUMBER", help="the number its calls present (default: its own From)")
    add.add_argument("--rate-plan", metavar="PLAN", help="the rate plan its calls are billed with (default plan)")
    add.add_argument("--disabled", action="store_true", help="add it disabled (it can neither register nor call)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin, never prompt (scripts)")

    listing = action("list", "list the accounts (never their secrets)", _list, user=False)
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")

    passwd = action("passwd", "set a new password, read from the terminal or stdin", _passwd)
    passwd.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin, never prompt (scripts)")

    change = action("set", "change an account's flag, caller ID or rate plan", _set)
    flag = change.add_mutually_exclusive_group()
    flag.add_argument("--enable", dest="enabled", action="store_const", const=True, help="let it register and call")
    flag.add_argument("--disable", dest="enabled", action="store_const", const=False, help="refuse it")
    caller = change.add_mutually_exclusive_group()
    caller.add_argument("--caller-id", metavar="NUMBER", help="the number its calls present")
    caller.add_argument("--no-caller-id", action="store_true", help="present its own From again")
    plan = change.add_mutually_exclusive_group()
    plan.add_argument("--rate-plan", metavar="PLAN", help="the rate plan its calls are billed with")
    plan.add_argument("--no-rate-plan", action="store_true", help="bill its calls with the default plan")

    action("del", "delete an account and its registered contacts", _delete)


# --- where: database and realm ----------------------------------------------------------------------


def _where(args: argparse.Namespace) -> tuple[str, str]:
    """The database URL and realm the command works on."""
    if args.db is not None:
        config = Config()
        url: str = args.db
        if "://" not in url:
            raise CliError(f"--db {url!r} is not a database URL (e.g. sqlite:///data/switchd.sqlite3)", EXIT_USAGE)
    else:
        config = load_config(args.config)
        url = config.database.url
    return url, args.realm or config.auth.realm


@contextmanager
def _database(url: str, *, create: bool) -> Iterator[sessionmaker[Session]]:
    """Sessions on `url`, its schema at head; an SQLite file that is missing is created only when `create`."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        path = Path(url.removeprefix(prefix))
        if not path.exists():
            if not create:
                raise CliError(f"no database at {path} (`switchd accounts add` or `switchd run` creates it)")
            path.parent.mkdir(parents=True, exist_ok=True)
    engine: Engine = open_engine(url)
    try:
        upgrade(engine)  # a database made before accounts existed gets its tables (a no-op at head)
        yield sessionmaker(engine)
    except SQLAlchemyError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise CliError(f"database {shown}: {str(exc).splitlines()[0]}") from exc
    finally:
        engine.dispose()


# --- the password ------------------------------------------------------------------------------------


def read_password(user: str, *, from_stdin: bool = False) -> str:
    """The new password: typed twice without echo on a terminal, else (or `from_stdin`) the first line of stdin."""
    if sys.stdin.isatty() and not from_stdin:
        first = getpass.getpass(f"password for {user}: ")
        if first != getpass.getpass("again: "):
            raise CliError("the two passwords differ; nothing changed", EXIT_USAGE)
    else:
        first = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not first or any(ord(c) < 32 or ord(c) == 127 for c in first):
        raise CliError("the password must be non-empty, without control characters; nothing changed", EXIT_USAGE)
    return first


def _digests(user: str, realm: str, password: str) -> tuple[str, str]:
    return ha1(DigestAlgorithm.MD5, user, realm, password), ha1(DigestAlgorithm.SHA256, user, realm, password)


# --- the actions -------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    url, realm = _where(args)
    md5, sha256 = _digests(args.user, realm, read_password(args.user, from_stdin=args.password_stdin))
    with _database(url, create=True) as sessions, sessions.begin() as session:
        add_account(session, args.user, realm, ha1_md5=md5, ha1_sha256=sha256, enabled=not args.disabled,
                    caller_id=args.caller_id, rate_plan=args.rate_plan)
    print(f"account {args.user}@{realm} added{' (disabled)' if args.disabled else ''}")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    url, realm = _where(args)
    password = read_password(args.user, from_stdin=args.password_stdin)
    with _database(url, create=False) as sessions, sessions.begin() as session:
        update_account(session, args.user, realm, ha1s=_digests(args.user, realm, password))
    print(f"password of {args.user}@{realm} changed")
    return 0


def _set(args: argparse.Namespace) -> int:
    url, realm = _where(args)
    changes: dict[str, object] = {}
    if args.enabled is not None:
        changes["enabled"] = args.enabled
    if args.caller_id is not None or args.no_caller_id:
        changes["caller_id"] = None if args.no_caller_id else args.caller_id
    if args.rate_plan is not None or args.no_rate_plan:
        changes["rate_plan"] = None if args.no_rate_plan else args.rate_plan
    if not changes:
        raise CliError("nothing to change (see switchd accounts set --help)", EXIT_USAGE)
    with _database(url, create=False) as sessions, sessions.begin() as session:
        info = update_account(session, args.user, realm, **changes)  # type: ignore[arg-type]
    print(f"account {info.username}@{info.realm}: {_describe(info)}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    url, realm = _where(args)
    with _database(url, create=False) as sessions, sessions.begin() as session:
        delete_account(session, args.user, realm)
    print(f"account {args.user}@{realm} deleted")
    return 0


def _describe(info: AccountInfo) -> str:
    return ", ".join([
        "enabled" if info.enabled else "disabled",
        f"caller ID {info.caller_id}" if info.caller_id else "own caller ID",
        f"rate plan {info.rate_plan}" if info.rate_plan else "default rate plan",
    ])


_COLUMNS = ("username", "realm", "enabled", "caller_id", "rate_plan")


def _list(args: argparse.Namespace) -> int:
    url, _ = _where(args)
    with _database(url, create=False) as sessions, sessions() as session:
        accounts = list_accounts(session, args.realm)
    rows = [{"username": a.username, "realm": a.realm, "enabled": a.enabled, "caller_id": a.caller_id,
             "rate_plan": a.rate_plan} for a in accounts]
    if args.format == "json":
        for row in rows:
            print(json.dumps(row))
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        table = Table(show_edge=False)
        for column in ("username", "realm", "enabled", "caller ID", "rate plan"):
            table.add_column(column)
        for a in accounts:
            table.add_row(escape(a.username), escape(a.realm), "yes" if a.enabled else "no",
                          escape(a.caller_id or ""), escape(a.rate_plan or ""))
        console = stdout()
        console.print(table)
        console.print(f"{len(accounts)} account{'s' if len(accounts) != 1 else ''}")
    return 0
