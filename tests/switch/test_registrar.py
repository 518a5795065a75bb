"""The registrar: bindings in memory that expire on time, users located for calls, and the database behind them."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing
from sqlalchemy.orm import sessionmaker

from switchd.billing import (
    AccountInfo,
    StoredBinding,
    add_account,
    load_bindings,
    open_engine,
    replace_bindings,
    update_account,
    upgrade,
)
from switchd.otp import ChildSpec, DynamicSupervisor, Process, Supervisor, stop, whereis
from switchd.sip import Request, parse_uri
from switchd.switch import (
    AccountsUnavailable,
    Acl,
    Binding,
    Gateway,
    RegisterLimits,
    RegistrarSettings,
    Transport,
    contact_gateway,
    gateway_name,
)
from switchd.switch._bindings import RegisterRefusal, read_register
from switchd.switch._registrar import (
    NotOurs,
    Registered,
    UnknownUser,
    Unregistered,
    bindings_of,
    locate,
    location_spec,
    register,
    reload_accounts,
)

from .test_bindings import register as register_message
from .test_dispatch import Mailbox


def info(user: str, *, enabled: bool = True) -> AccountInfo:
    return AccountInfo(user, "switchd", "0" * 32, "0" * 64, enabled)


ACCOUNTS = {"alice": info("alice"), "bob": info("bob"), "1001": info("1001"), "off": info("off", enabled=False)}
SETTINGS = RegistrarSettings(node="n1", realm="switchd", domains=frozenset({"switch.example", "192.0.2.1"}),
                             limits=RegisterLimits(min_expires=60, max_expires=3600, default_expires=600))


@asynccontextmanager
async def registrar(settings: RegistrarSettings = SETTINGS, *, accounts: dict[str, AccountInfo] | None = None,
                    links: bool = False) -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as nursery:
        if links:
            await nursery.start(partial(DynamicSupervisor.start_link, name="contacts"))
        await nursery.start(partial(Supervisor.start_link, [location_spec(settings, accounts=accounts)],
                                    name="test-root"))
        yield nursery
        await stop("test-root", "shutdown", timeout=30)
        nursery.cancel_scope.cancel()


async def do_register(message: Request, source: str = "192.0.2.7") -> object:
    checked = read_register(message, source, Acl())
    assert not isinstance(checked, RegisterRefusal)
    return await register(checked)


async def test_a_registered_user_is_located_with_its_contacts_best_first(autojump_clock: trio.testing.MockClock) -> None:
    async with registrar(accounts=ACCOUNTS):
        await do_register(register_message("<sip:alice@192.0.2.7:5062>;q=0.5", "<sip:alice@192.0.2.8>",
                                           to="<sip:alice@switch.example>"))
        found = await locate(parse_uri("sip:alice@Switch.Example"))
        assert isinstance(found, Registered) and found.user == "alice"
        assert [b.contact for b in found.contacts] == ["sip:alice@192.0.2.8", "sip:alice@192.0.2.7:5062"]


@pytest.mark.parametrize(("uri", "expected"), [
    ("sip:bob@switch.example", Unregistered("bob")),
    ("sip:carol@switch.example", UnknownUser("carol")),
    ("sip:off@switch.example", UnknownUser("off")),  # a disabled account is nobody
    ("sip:+14155550100@switch.example", NotOurs()),  # a number to dial: prefix routes
    ("sip:2000@192.0.2.1:5060", NotOurs()),
    ("sip:alice@elsewhere.example", NotOurs()),  # not our domain: routed by its number as before
    ("sip:switch.example", NotOurs()),
    ("tel:+14155550100", NotOurs()),
])
async def test_users_that_cannot_be_called_are_told_apart(uri: str, expected: object) -> None:
    async with registrar(accounts=ACCOUNTS):
        assert await locate(parse_uri(uri)) == expected


async def test_at_the_nodes_own_address_a_name_without_an_account_is_routed_by_prefix() -> None:
    """SIPp and other tools dial `service@<address>`: only a configured domain refuses unknown names."""
    settings = replace(SETTINGS, domains=SETTINGS.domains | {"127.0.0.1"}, address_only=frozenset({"127.0.0.1"}))
    async with registrar(settings, accounts=ACCOUNTS):
        assert await locate(parse_uri("sip:service@127.0.0.1:5060")) == NotOurs()
        assert await locate(parse_uri("sip:bob@127.0.0.1")) == Unregistered("bob")  # an account still is a user
        assert await locate(parse_uri("sip:service@switch.example")) == UnknownUser("service")


async def test_a_numeric_account_is_a_user_before_it_is_a_number() -> None:
    async with registrar(accounts=ACCOUNTS):
        assert await locate(parse_uri("sip:1001@switch.example")) == Unregistered("1001")


async def test_bindings_expire_on_time_and_are_never_used_after(autojump_clock: trio.testing.MockClock) -> None:
    async with registrar(accounts=ACCOUNTS):
        await do_register(register_message("<sip:alice@192.0.2.7>;expires=120"))
        await trio.sleep(119.5)
        assert isinstance(await locate(parse_uri("sip:alice@switch.example")), Registered)
        await trio.sleep(0.5)
        assert await locate(parse_uri("sip:alice@switch.example")) == Unregistered("alice")
        assert await bindings_of("alice") == ()


async def test_a_register_for_an_account_that_does_not_exist_changes_nothing() -> None:
    async with registrar(accounts=ACCOUNTS):
        refused = await do_register(register_message("<sip:x@192.0.2.7>", to="<sip:carol@switch.example>"))
        assert isinstance(refused, RegisterRefusal) and refused.status == 404


async def test_a_register_for_another_domain_is_refused() -> None:
    async with registrar(accounts=ACCOUNTS):
        refused = await do_register(register_message("<sip:x@192.0.2.7>", to="<sip:alice@elsewhere.example>"))
        assert isinstance(refused, RegisterRefusal) and (refused.status, refused.reason) == (404, "Domain Not Served")


async def test_locating_a_user_starts_a_link_to_each_contact_once(autojump_clock: trio.testing.MockClock) -> None:
    started: list[str] = []

    def contact_link(gateway: Gateway) -> ChildSpec:
        started.append(gateway.name)
        return ChildSpec(id=gateway.name, start=partial(Process.start_link, Mailbox().run,
                                                        name=gateway_name(gateway.name)))

    settings = dataclasses.replace(SETTINGS, contact_link=contact_link)
    async with registrar(settings, accounts=ACCOUNTS, links=True):
        await do_register(register_message("<sip:alice@192.0.2.7:5062;transport=tcp>", "<sips:alice@[2001:db8::9]>"))
        for _ in range(2):
            await locate(parse_uri("sip:alice@switch.example"))
        assert sorted(started) == ["contact:tcp:192.0.2.7:5062", "contact:tcp:[2001:db8::9]:5061"]
        assert whereis(gateway_name("contact:tcp:192.0.2.7:5062")) is not None


async def test_contacts_the_outbound_acl_refuses_now_are_not_called(autojump_clock: trio.testing.MockClock) -> None:
    denied = dataclasses.replace(SETTINGS, acl=Acl.from_lists(contact_deny=["10.0.0.0/8"]))
    async with registrar(denied, accounts=ACCOUNTS):
        # bound as if registered before the list changed (a REGISTER now is refused by the dispatcher)
        await do_register(register_message("<sip:alice@10.0.0.7>", "<sip:alice@192.0.2.7>"))
        found = await locate(parse_uri("sip:alice@switch.example"))
        assert isinstance(found, Registered) and [b.contact for b in found.contacts] == ["sip:alice@192.0.2.7"]
        await do_register(register_message("<sip:alice@192.0.2.7>;expires=0", cseq=2))
        assert await locate(parse_uri("sip:alice@switch.example")) == Unregistered("alice")


# --- with the database ---------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'switchd.sqlite3'}"
    engine = open_engine(url)
    upgrade(engine)
    with sessionmaker(engine).begin() as session:
        for user in ("alice", "bob"):
            add_account(session, user, "switchd", ha1_md5="0" * 32, ha1_sha256="0" * 64, rate_plan="gold")
    engine.dispose()
    return url


def stored(url: str, node: str = "n1") -> list[StoredBinding]:
    engine = open_engine(url)
    try:
        with sessionmaker(engine).begin() as session:
            return load_bindings(session, node, datetime.now(UTC))
    finally:
        engine.dispose()


async def settled(url: str, count: int) -> list[StoredBinding]:
    """The stored bindings once there are `count` of them (the write follows the 200 by milliseconds)."""
    with trio.fail_after(10):
        while len(rows := stored(url)) != count:
            await trio.sleep(0.01)
    return rows


async def test_accounts_come_from_the_database_and_bindings_survive_a_restart(db: str) -> None:
    settings = dataclasses.replace(SETTINGS, database_url=db)
    async with registrar(settings):
        found = await locate(parse_uri("sip:alice@switch.example"))
        assert found == Unregistered("alice")
        await do_register(register_message("<sip:alice@192.0.2.7:5062>;expires=300"))
        rows = await settled(db, 1)
        assert rows[0].contact == "sip:alice@192.0.2.7:5062"
        left = (rows[0].expires_at - datetime.now(UTC)).total_seconds()
        assert 295 < left <= 300
    async with registrar(settings):  # a new run of the node
        found = await locate(parse_uri("sip:alice@switch.example"))
        assert isinstance(found, Registered)
        [binding] = found.contacts
        assert 290 < binding.expires_at - trio.current_time() <= 300
        assert (binding.call_id, binding.cseq, binding.transport) == ("reg-1", 1, "tcp")
        # an out-of-order REGISTER is still recognised after the restart
        refused = await do_register(register_message("<sip:alice@192.0.2.7:5062>;expires=0", cseq=1))
        assert isinstance(refused, RegisterRefusal) and refused.status == 500
        await do_register(register_message("*", expires="0", cseq=2))
        await settled(db, 0)


async def test_expired_rows_are_never_loaded(db: str) -> None:
    engine = open_engine(db)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with sessionmaker(engine).begin() as session:
        replace_bindings(session, "n1", "alice", "switchd", [StoredBinding(
            "alice", "switchd", "sip:alice@192.0.2.7", 1000, past, "c", 1, "tcp", "192.0.2.7", past)])
    engine.dispose()
    async with registrar(dataclasses.replace(SETTINGS, database_url=db)):
        assert await locate(parse_uri("sip:alice@switch.example")) == Unregistered("alice")


async def test_an_account_added_or_disabled_in_the_database_is_seen_at_the_next_refresh(db: str) -> None:
    settings = dataclasses.replace(SETTINGS, database_url=db, accounts_refresh=0.2)
    async with registrar(settings):
        await do_register(register_message("<sip:bob@192.0.2.9>", to="<sip:bob@switch.example>"))
        await settled(db, 1)
        engine = open_engine(db)
        with sessionmaker(engine).begin() as session:
            add_account(session, "carol", "switchd", ha1_md5="0" * 32, ha1_sha256="0" * 64)
            update_account(session, "bob", "switchd", enabled=False)
        engine.dispose()
        with trio.fail_after(10):
            while await locate(parse_uri("sip:carol@switch.example")) != Unregistered("carol"):
                await trio.sleep(0.05)
        assert await locate(parse_uri("sip:bob@switch.example")) == UnknownUser("bob")
        await settled(db, 0)  # the disabled account's contacts went


async def test_reload_accounts_reads_them_at_once(db: str) -> None:
    settings = dataclasses.replace(SETTINGS, database_url=db, accounts_refresh=3600)
    async with registrar(settings):
        engine = open_engine(db)
        with sessionmaker(engine).begin() as session:
            add_account(session, "dave", "switchd", ha1_md5="0" * 32, ha1_sha256="0" * 64)
        engine.dispose()
        assert await reload_accounts() == 3
        assert await locate(parse_uri("sip:dave@switch.example")) == Unregistered("dave")


async def test_a_database_that_cannot_be_read_leaves_the_registrar_up_and_empty(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'no-such-dir' / 'db.sqlite3'}"
    async with registrar(dataclasses.replace(SETTINGS, database_url=missing)):
        assert await locate(parse_uri("sip:alice@switch.example")) == UnknownUser("alice")
        with pytest.raises(AccountsUnavailable):
            await reload_accounts()
        assert whereis("registrar") is not None


@pytest.mark.parametrize(("contact", "transport", "source", "reached"), [
    ("sip:alice@192.0.2.7:5062;transport=tcp", "tcp", "192.0.2.7", ("192.0.2.7", 5062, Transport.TCP)),
    ("sip:alice@192.0.2.7", "tcp", "192.0.2.7", ("192.0.2.7", 5060, Transport.TCP)),
    ("sip:alice@10.0.0.5:5062", "udp", "198.51.100.77:41234", ("198.51.100.77", 41234, Transport.UDP)),
    ("sip:alice@[2001:db8::5]:5062", "udp", "[2001:db8::9]:5070", ("2001:db8::9", 5070, Transport.UDP)),
    # a UDP binding whose source has no port (a row kept before ports were): its Contact, still over UDP
    ("sip:alice@10.0.0.5:5062", "udp", "198.51.100.77", ("10.0.0.5", 5062, Transport.UDP)),
])
def test_a_call_reaches_a_tcp_contact_where_it_says_and_a_udp_one_where_it_registered_from(
        contact: str, transport: str, source: str, reached: tuple[str, int, Transport]) -> None:
    binding = Binding(contact, parse_uri(contact), 1000, 100.0, "c", 1, transport, source, 0.0)
    gateway = contact_gateway(binding)
    assert (gateway.host, gateway.port, gateway.transport) == reached
    assert gateway.tcp_fallback is (reached[2] is Transport.TCP)  # a phone on UDP is never tried over TCP
