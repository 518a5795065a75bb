"""Accounts and registered contacts in the database: what `switchd accounts` and the registrar read and write.

Plain functions on a SQLAlchemy `Session` (the caller owns the transaction: ``with
sessionmaker(engine).begin() as session``), blocking: the registrar runs them in a thread of its own
(see switchd.switch's registrar), the CLI directly.

An account is handed around as an `AccountInfo`: a frozen snapshot whose HA1 fields are left out
of its repr, so a log line or a traceback that shows one never shows a secret. The digest
computation itself (HA1 from a password) is switchd.sip's: billing only ever sees the hashes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ._errors import AccountExists, InvalidAccount, UnknownAccount
from ._models import Account, Binding

__all__ = [
    "AccountInfo", "StoredBinding", "add_account", "delete_account", "delete_expired_bindings", "get_account",
    "list_accounts", "load_bindings", "replace_bindings", "update_account",
]

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
"""A username: 1-64 of letters, digits, ``. _ + -`` (a SIP user part that needs no escaping), letter or digit first."""
_REALM = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no space: it is quoted in every challenge
_CALLER_ID = re.compile(r"\+?[0-9]{1,63}")
_PLAN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_HEX = {"ha1_md5": re.compile(r"[0-9a-f]{32}"), "ha1_sha256": re.compile(r"[0-9a-f]{64}")}

_UNCHANGED = object()


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """One account as the registrar and the digest check use it (HA1s are not shown by repr)."""

    username: str
    realm: str
    ha1_md5: str = field(repr=False)
    ha1_sha256: str = field(repr=False)
    enabled: bool = True
    caller_id: str | None = None
    rate_plan: str | None = None

    def ha1(self, algorithm: str) -> str:
        """The HA1 for digest `algorithm` ("MD5" or "SHA-256"); KeyError for any other."""
        return {"MD5": self.ha1_md5, "SHA-256": self.ha1_sha256}[algorithm]


@dataclass(frozen=True, slots=True)
class StoredBinding:
    """One registered contact as the database keeps it (see `Binding`); times are aware UTC."""

    username: str
    realm: str
    contact: str
    q: int
    expires_at: datetime
    call_id: str
    cseq: int
    transport: str
    source: str
    registered_at: datetime


def _check(username: str, realm: str, *, caller_id: str | None = None, rate_plan: str | None = None,
           ha1s: dict[str, str] | None = None) -> None:
    if not USERNAME.fullmatch(username):
        raise InvalidAccount(f"username {username!r}: 1-64 letters, digits, '.', '_', '+' or '-', "
                             "starting with a letter or digit")
    if not _REALM.fullmatch(realm):
        raise InvalidAccount(f"realm {realm!r}: 1-128 printable ASCII characters, no space")
    if caller_id is not None and not _CALLER_ID.fullmatch(caller_id):
        raise InvalidAccount(f"caller ID {caller_id!r}: digits, optionally after a '+'")
    if rate_plan is not None and not _PLAN.fullmatch(rate_plan):
        raise InvalidAccount(f"rate plan {rate_plan!r} is not a plan name")
    for name, value in (ha1s or {}).items():
        if not _HEX[name].fullmatch(value):
            raise InvalidAccount(f"{name} of {username}@{realm} is not a lower-case hex digest")


def _info(row: Account) -> AccountInfo:
    return AccountInfo(row.username, row.realm, row.ha1_md5, row.ha1_sha256, row.enabled, row.caller_id,
                       row.rate_plan)


def _row(session: Session, username: str, realm: str) -> Account | None:
    return session.scalars(select(Account).where(Account.username == username, Account.realm == realm)).first()


def add_account(session: Session, username: str, realm: str, *, ha1_md5: str, ha1_sha256: str,
                enabled: bool = True, caller_id: str | None = None, rate_plan: str | None = None,
                now: datetime | None = None) -> AccountInfo:
    """Add an account; raises InvalidAccount for a value it cannot hold, AccountExists when taken."""
    _check(username, realm, caller_id=caller_id, rate_plan=rate_plan,
           ha1s={"ha1_md5": ha1_md5, "ha1_sha256": ha1_sha256})
    if _row(session, username, realm) is not None:
        raise AccountExists(f"account {username}@{realm} exists already")
    at = now or datetime.now(UTC)
    row = Account(username=username, realm=realm, ha1_md5=ha1_md5, ha1_sha256=ha1_sha256, enabled=enabled,
                  caller_id=caller_id, rate_plan=rate_plan, created_at=at, updated_at=at)
    session.add(row)
    session.flush()
    return _info(row)


def update_account(session: Session, username: str, realm: str, *, ha1s: tuple[str, str] | None = None,
                   enabled: bool | None = None, caller_id: str | None | object = _UNCHANGED,
                   rate_plan: str | None | object = _UNCHANGED, now: datetime | None = None) -> AccountInfo:
    """Change what is given of an account: its HA1s (md5, sha256), enabled flag, caller ID, rate plan.

    ``caller_id=None`` / ``rate_plan=None`` clears them; leaving them out keeps them. Raises
    UnknownAccount, or InvalidAccount for a value it cannot hold.
    """
    new_caller = None if caller_id is _UNCHANGED else caller_id
    new_plan = None if rate_plan is _UNCHANGED else rate_plan
    assert new_caller is None or isinstance(new_caller, str)
    assert new_plan is None or isinstance(new_plan, str)
    _check(username, realm, caller_id=new_caller, rate_plan=new_plan,
           ha1s=None if ha1s is None else {"ha1_md5": ha1s[0], "ha1_sha256": ha1s[1]})
    row = _row(session, username, realm)
    if row is None:
        raise UnknownAccount(f"no account {username}@{realm}")
    if ha1s is not None:
        row.ha1_md5, row.ha1_sha256 = ha1s
    if enabled is not None:
        row.enabled = enabled
    if caller_id is not _UNCHANGED:
        row.caller_id = new_caller
    if rate_plan is not _UNCHANGED:
        row.rate_plan = new_plan
    row.updated_at = now or datetime.now(UTC)
    session.flush()
    return _info(row)


def delete_account(session: Session, username: str, realm: str) -> None:
    """Delete an account and every contact it registered on any node; raises UnknownAccount."""
    row = _row(session, username, realm)
    if row is None:
        raise UnknownAccount(f"no account {username}@{realm}")
    session.delete(row)
    session.execute(delete(Binding).where(Binding.username == username, Binding.realm == realm))


def get_account(session: Session, username: str, realm: str) -> AccountInfo | None:
    """The account `username` in `realm`, or None."""
    row = _row(session, username, realm)
    return None if row is None else _info(row)


def list_accounts(session: Session, realm: str | None = None) -> list[AccountInfo]:
    """Every account (of `realm` when given), by realm then username."""
    query = select(Account).order_by(Account.realm, Account.username)
    if realm is not None:
        query = query.where(Account.realm == realm)
    return [_info(row) for row in session.scalars(query)]


# -- bindings ---------------------------------------------------------------------------------------


def _stored(row: Binding) -> StoredBinding:
    return StoredBinding(row.username, row.realm, row.contact, row.q, row.expires_at, row.call_id, row.cseq,
                         row.transport, row.source, row.registered_at)


def load_bindings(session: Session, node: str, now: datetime) -> list[StoredBinding]:
    """The bindings of `node` that have not expired at `now` (the expired ones are deleted first)."""
    delete_expired_bindings(session, node, now)
    query = select(Binding).where(Binding.node == node).order_by(Binding.username, Binding.id)
    return [_stored(row) for row in session.scalars(query)]


def replace_bindings(session: Session, node: str, username: str, realm: str,
                     bindings: Sequence[StoredBinding]) -> None:
    """Make `bindings` the contacts `username` has on `node` (none: unregistered)."""
    session.execute(delete(Binding).where(Binding.node == node, Binding.username == username,
                                          Binding.realm == realm))
    session.add_all(_rows(node, bindings))


def _rows(node: str, bindings: Iterable[StoredBinding]) -> list[Binding]:
    return [Binding(node=node, username=b.username, realm=b.realm, contact=b.contact, q=b.q,
                    expires_at=b.expires_at, call_id=b.call_id, cseq=b.cseq, transport=b.transport,
                    source=b.source, registered_at=b.registered_at) for b in bindings]


def delete_expired_bindings(session: Session, node: str, now: datetime) -> int:
    """Delete the bindings of `node` that expired by `now`; how many went."""
    result = session.execute(delete(Binding).where(Binding.node == node, Binding.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
