"""Accounts and bindings in the database (SQLite and PostgreSQL): what `switchd accounts` and the registrar rely on."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from switchd.billing import (
    Account,
    AccountExists,
    InvalidAccount,
    StoredBinding,
    UnknownAccount,
    add_account,
    delete_account,
    get_account,
    list_accounts,
    load_bindings,
    replace_bindings,
    update_account,
)

MD5 = "0" * 32
SHA = "1" * 64
NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)


def begin(engine: Engine) -> AbstractContextManager[Session]:
    """A session in a transaction that commits at the end of the block (rolls back on an error)."""
    return sessionmaker(engine).begin()


def binding(user: str, contact: str, expires_at: datetime, *, realm: str = "switchd") -> StoredBinding:
    return StoredBinding(user, realm, contact, 1000, expires_at, "cid", 1, "tcp", "192.0.2.1", NOW)


def test_an_account_keeps_its_digests_flag_caller_id_and_plan(engine: Engine) -> None:
    with begin(engine) as session:
        add_account(session, "alice", "switchd", ha1_md5=MD5, ha1_sha256=SHA, caller_id="+14155550100",
                    rate_plan="retail")
    with Session(engine) as session:
        alice = get_account(session, "alice", "switchd")
        assert alice is not None
        assert (alice.ha1("MD5"), alice.ha1("SHA-256")) == (MD5, SHA)
        assert (alice.enabled, alice.caller_id, alice.rate_plan) == (True, "+14155550100", "retail")
        assert get_account(session, "alice", "other") is None


def test_the_repr_of_an_account_shows_no_digest(engine: Engine) -> None:
    with begin(engine) as session:
        alice = add_account(session, "alice", "switchd", ha1_md5=MD5, ha1_sha256=SHA)
    assert MD5 not in repr(alice) and SHA not in repr(alice)


def test_a_username_is_unique_within_its_realm_only(engine: Engine) -> None:
    with begin(engine) as session:
        add_account(session, "bob", "a", ha1_md5=MD5, ha1_sha256=SHA)
        add_account(session, "bob", "b", ha1_md5=MD5, ha1_sha256=SHA)
    with pytest.raises(AccountExists, match="bob@a"), begin(engine) as session:
        add_account(session, "bob", "a", ha1_md5=MD5, ha1_sha256=SHA)
    with Session(engine) as session:
        assert [(a.username, a.realm) for a in list_accounts(session)] == [("bob", "a"), ("bob", "b")]
        assert [a.realm for a in list_accounts(session, "b")] == ["b"]


@pytest.mark.parametrize(("username", "realm", "extra"), [
    ("", "r", {}), ("-x", "r", {}), ("a b", "r", {}), ("x" * 65, "r", {}), ("al\u00e9", "r", {}),
    ("ok", "has space", {}), ("ok", "", {}), ("ok", "r", {"caller_id": "call me"}),
    ("ok", "r", {"rate_plan": "no spaces please"}), ("ok", "r", {"ha1_md5": "XYZ"}),
])
def test_values_an_account_cannot_hold_are_refused(engine: Engine, username: str, realm: str,
                                                   extra: dict[str, str]) -> None:
    values = {"ha1_md5": MD5, "ha1_sha256": SHA, **extra}
    with pytest.raises(InvalidAccount), begin(engine) as session:
        add_account(session, username, realm, **values)  # type: ignore[arg-type]


def test_update_changes_only_what_it_is_given(engine: Engine) -> None:
    with begin(engine) as session:
        add_account(session, "carol", "switchd", ha1_md5=MD5, ha1_sha256=SHA, caller_id="100", rate_plan="p1")
    with begin(engine) as session:
        update_account(session, "carol", "switchd", enabled=False)
    with begin(engine) as session:
        carol = update_account(session, "carol", "switchd", ha1s=("2" * 32, "3" * 64), caller_id=None)
    assert (carol.enabled, carol.caller_id, carol.rate_plan, carol.ha1("MD5")) == (False, None, "p1", "2" * 32)
    with pytest.raises(UnknownAccount), begin(engine) as session:
        update_account(session, "nobody", "switchd", enabled=True)


def test_deleting_an_account_deletes_its_bindings_too(engine: Engine) -> None:
    with begin(engine) as session:
        add_account(session, "dave", "switchd", ha1_md5=MD5, ha1_sha256=SHA)
        replace_bindings(session, "n1", "dave", "switchd", [binding("dave", "sip:d@192.0.2.1", NOW + timedelta(hours=1))])
    with begin(engine) as session:
        delete_account(session, "dave", "switchd")
    with Session(engine) as session:
        assert load_bindings(session, "n1", NOW) == []
        assert session.scalars(select(Account)).all() == []
    with pytest.raises(UnknownAccount), begin(engine) as session:
        delete_account(session, "dave", "switchd")


def test_bindings_are_per_node_replaced_whole_and_expired_ones_are_never_loaded(engine: Engine) -> None:
    later = NOW + timedelta(minutes=5)
    with begin(engine) as session:
        replace_bindings(session, "n1", "erin", "switchd", [binding("erin", "sip:e1@192.0.2.1", later),
                                                            binding("erin", "sip:e2@192.0.2.2", NOW)])
        replace_bindings(session, "n2", "erin", "switchd", [binding("erin", "sip:e3@192.0.2.3", later)])
    with begin(engine) as session:
        assert [b.contact for b in load_bindings(session, "n1", NOW)] == ["sip:e1@192.0.2.1"]
        assert [b.contact for b in load_bindings(session, "n2", NOW)] == ["sip:e3@192.0.2.3"]
    with begin(engine) as session:
        replace_bindings(session, "n1", "erin", "switchd", [])
    with Session(engine) as session:
        assert load_bindings(session, "n1", NOW) == []
        loaded = load_bindings(session, "n2", NOW)
    assert loaded == [binding("erin", "sip:e3@192.0.2.3", later)]  # every field round-trips
