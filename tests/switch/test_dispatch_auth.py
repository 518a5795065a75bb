"""Who may call and register: the ACL, digest challenges on INVITE (407) and REGISTER (401), the registrar's answers.

Through the real Dispatcher, a real Registrar (in memory) and mailboxes for the sessions, as a
connection hands messages over; the source address is what a connection reads from its socket.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from switchd.billing import AccountInfo
from switchd.otp import NoProcess, Supervisor, stop, whereis
from switchd.sip import (
    DigestAlgorithm,
    Nonces,
    Request,
    Response,
    authorization,
    ha1,
    parse_challenge,
    parse_message,
)
from switchd.switch import (
    Acl,
    Admission,
    Authenticator,
    Cause,
    Outbound,
    RegisterLimits,
    RegistrarSettings,
    Transport,
    UdpPeer,
    a_leg_name,
    bindings_of,
    contact_gateway,
    location_spec,
)

from .test_dispatch import Node, node
from .transport_helpers import request

REALM = "switchd"
PASSWORD = "correct horse battery staple"
ALICE = AccountInfo("alice", REALM, ha1(DigestAlgorithm.MD5, "alice", REALM, PASSWORD),
                    ha1(DigestAlgorithm.SHA256, "alice", REALM, PASSWORD), rate_plan="gold")
BOB = AccountInfo("bob", REALM, ha1(DigestAlgorithm.MD5, "bob", REALM, "bobs"),
                  ha1(DigestAlgorithm.SHA256, "bob", REALM, "bobs"))
PHONE = "192.0.2.7"
CARRIER = "198.51.100.20"
SETTINGS = RegistrarSettings(realm=REALM, domains=frozenset({"switch.example"}),
                             limits=RegisterLimits(min_expires=60, max_expires=3600, default_expires=600))


async def _accounts(user: str) -> AccountInfo | None:
    return {"alice": ALICE, "bob": BOB}.get(user)


@asynccontextmanager
async def switch(*, acl: Acl | None = None, admission: Admission | None = None,
                 **options: Any) -> AsyncIterator[Node]:
    """A node that challenges calls from untrusted sources and serves REGISTER with a registrar in memory."""
    authenticator = Authenticator(REALM, Nonces(b"n" * 32, ttl=300.0), _accounts)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(Supervisor.start_link,
                                    [location_spec(SETTINGS, accounts={"alice": ALICE, "bob": BOB})],
                                    name="test-location"))
        options = {"challenge_calls": True, "registrar": True, **options}
        async with node(admission=admission, acl=acl or Acl.from_lists(trusted=[CARRIER], deny=["203.0.113.0/24"]),
                        authenticator=authenticator, **options) as n:
            yield n
        await stop("test-location", "shutdown", timeout=10)
        nursery.cancel_scope.cancel()


def parse(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def register(extra: str = "", *, contact: str = "<sip:alice@192.0.2.7:5062;transport=tcp>", cseq: int = 1,
             user: str = "alice") -> Request:
    return parse((
        "REGISTER sip:switch.example SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.7:5062;branch=z9hG4bK-reg\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@switch.example>;tag=rf\r\n"
        f"To: <sip:{user}@switch.example>\r\n"
        "Call-ID: reg-call-id\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: {contact}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n").encode())


def credentials(challenge_response: Response, *, method: str, uri: str, user: str = "alice",
                password: str = PASSWORD, nc: int = 1, header: str = "WWW-Authenticate") -> str:
    challenge = parse_challenge(challenge_response.headers.get_all(header)[0])
    return authorization(challenge, method=method, uri=uri, username=user, password=password, nc=nc,
                         cnonce="c0ffee")


async def answers(n: Node) -> list[Response]:
    await trio.testing.wait_all_tasks_blocked()
    return [m.message for m in n.conn_box.got if isinstance(m, Outbound) and isinstance(m.message, Response)]


# --- the ACL -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "REGISTER", "BYE"])
async def test_a_denied_network_gets_403_for_everything_and_is_counted(method: str) -> None:
    async with switch() as n:
        await n.dispatcher(parse(request(method, "d1", to_tag="t" if method == "BYE" else None)), n.conn, 1.0,
                           "203.0.113.9")
        await n.dispatcher(parse(request("ACK", "d1", to_tag="t")), n.conn, 1.0, "203.0.113.9")
        assert [a.status for a in await answers(n)] == [403]  # and nothing for the ACK
        assert n.specs == [] and n.admission.statistics().rejections[Cause.ACL] == 2


# --- INVITE: 407 ---------------------------------------------------------------------------------------


async def test_an_untrusted_invite_is_challenged_and_starts_nothing_until_it_authenticates() -> None:
    async with switch() as n:
        invite = parse(request("INVITE", "c1", uri="sip:2000@switch.example"))
        await n.dispatcher(invite, n.conn, 1.0, PHONE)
        [challenge] = await answers(n)
        assert challenge.status == 407 and n.specs == [] and whereis(a_leg_name("c1")) is None
        assert [parse_challenge(v).param("algorithm") for v in challenge.headers.get_all("Proxy-Authenticate")] == [
            "SHA-256", "MD5"]
        value = credentials(challenge, method="INVITE", uri="sip:2000@switch.example", header="Proxy-Authenticate")
        again = parse(request("INVITE", "c1", uri="sip:2000@switch.example", cseq=2,
                              extra=f"Proxy-Authorization: {value}\r\n"))
        await n.dispatcher(again, n.conn, 2.0, PHONE)
        assert n.accounts == [ALICE] and whereis(a_leg_name("c1")) is not None
        assert n.admission.statistics().rejections.total == 0  # a challenge is routine, not a rejection


async def test_a_trusted_carrier_calls_without_a_challenge() -> None:
    async with switch() as n:
        await n.dispatcher(parse(request("INVITE", "c2")), n.conn, 1.0, CARRIER)
        assert n.accounts == [None] and await answers(n) == []


async def test_a_wrong_password_gets_403_counted_as_auth_and_never_a_session() -> None:
    async with switch() as n:
        await n.dispatcher(parse(request("INVITE", "c3")), n.conn, 1.0, PHONE)
        [challenge] = await answers(n)
        value = credentials(challenge, method="INVITE", uri="sip:service@127.0.0.1:5060", password="guess",
                            header="Proxy-Authenticate")
        await n.dispatcher(parse(request("INVITE", "c3", cseq=2, extra=f"Proxy-Authorization: {value}\r\n")),
                           n.conn, 2.0, PHONE)
        assert [a.status for a in await answers(n)] == [407, 403]
        assert n.specs == [] and n.admission.statistics().rejections[Cause.AUTH] == 1


async def test_with_calls_not_challenged_anybody_not_denied_may_call() -> None:
    async with switch(challenge_calls=False) as n:
        await n.dispatcher(parse(request("INVITE", "c4")), n.conn, 1.0, PHONE)
        assert n.accounts == [None]


# --- REGISTER: 401 -------------------------------------------------------------------------------------


async def test_register_is_challenged_then_bound_and_the_200_lists_the_binding(
        autojump_clock: trio.testing.MockClock) -> None:
    async with switch() as n:
        await n.dispatcher(register(), n.conn, 1.0, PHONE)
        [challenge] = await answers(n)
        assert challenge.status == 401 and len(challenge.headers.get_all("WWW-Authenticate")) == 2
        value = credentials(challenge, method="REGISTER", uri="sip:switch.example")
        await n.dispatcher(register(f"Authorization: {value}\r\n", cseq=2), n.conn, 2.0, PHONE)
        ok = (await answers(n))[-1]
        assert ok.status == 200
        assert ok.headers.get_all("Contact") == ["<sip:alice@192.0.2.7:5062;transport=tcp>;expires=600"]
        [binding] = await bindings_of("alice")
        assert (binding.source, binding.transport) == (PHONE, "tcp")


async def test_a_phone_registered_over_udp_is_reached_where_its_register_came_from(
        autojump_clock: trio.testing.MockClock) -> None:
    """RFC 3581 symmetric signalling: behind a NAT the phone's Contact names its private address,
    its REGISTER comes from the NAT's; calls go to the latter, from the UDP socket, over UDP only."""
    async with switch() as n:
        peer = UdpPeer(n.conn, ("198.51.100.77", 41234), "192.0.2.1:5060")
        nated = "<sip:alice@10.0.0.5:5062>"

        def over_udp(extra: str = "", cseq: int = 1) -> Request:
            message = register(extra, contact=nated, cseq=cseq)
            message.headers.set("Via", "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-udp-reg;rport=41234;"
                                       "received=198.51.100.77")
            return message

        await n.dispatcher(over_udp(), peer, 1.0, "198.51.100.77")
        [challenge] = await answers(n)
        value = credentials(challenge, method="REGISTER", uri="sip:switch.example")
        await n.dispatcher(over_udp(f"Authorization: {value}\r\n", cseq=2), peer, 2.0, "198.51.100.77")
        assert (await answers(n))[-1].status == 200
        [binding] = await bindings_of("alice")
        assert (binding.contact, binding.transport, binding.source) == ("sip:alice@10.0.0.5:5062", "udp",
                                                                        "198.51.100.77:41234")
        gateway = contact_gateway(binding)
        assert (gateway.host, gateway.port, gateway.transport, gateway.tcp_fallback) == (
            "198.51.100.77", 41234, Transport.UDP, False)


async def test_register_is_challenged_even_from_a_trusted_network() -> None:
    async with switch() as n:
        await n.dispatcher(register(), n.conn, 1.0, CARRIER)
        assert [a.status for a in await answers(n)] == [401]


async def test_an_account_registers_its_own_address_only() -> None:
    async with switch() as n:
        await n.dispatcher(register(user="bob"), n.conn, 1.0, PHONE)
        [challenge] = await answers(n)
        value = credentials(challenge, method="REGISTER", uri="sip:switch.example")  # alice's credentials
        await n.dispatcher(register(f"Authorization: {value}\r\n", user="bob", cseq=2), n.conn, 2.0, PHONE)
        assert [a.status for a in await answers(n)] == [401, 403]
        assert await bindings_of("bob") == ()


async def test_too_short_an_interval_is_423_with_min_expires() -> None:
    async with switch() as n:
        await n.dispatcher(register(), n.conn, 1.0, PHONE)
        [challenge] = await answers(n)
        value = credentials(challenge, method="REGISTER", uri="sip:switch.example")
        await n.dispatcher(register(f"Authorization: {value}\r\nExpires: 10\r\n", cseq=2), n.conn, 2.0, PHONE)
        refused = (await answers(n))[-1]
        assert (refused.status, refused.headers.get("Min-Expires")) == (423, "60")


async def test_a_register_flood_from_one_address_gets_503_before_any_digest(
        autojump_clock: trio.testing.MockClock) -> None:
    admission = Admission(register_per_ip_rate=1.0, register_per_ip_burst=2)
    async with switch(admission=admission) as n:
        for i in range(5):
            await n.dispatcher(register(cseq=i + 1), n.conn, 1.0, PHONE)
        statuses = [a.status for a in await answers(n)]
        assert statuses == [401, 401, 503, 503, 503]
        assert (await answers(n))[-1].headers.get("Retry-After") == "1"
        assert admission.statistics().rejections[Cause.REGISTER_RATE] == 3


async def test_options_lists_register_when_a_registrar_runs() -> None:
    async with switch() as n:
        await n.dispatcher(parse(request("OPTIONS", "o1")), n.conn, 1.0, PHONE)
        [ok] = await answers(n)
        assert "REGISTER" in ok.headers.get_all("Allow")


async def test_without_a_registrar_register_is_405() -> None:
    async with node() as n:
        await n.dispatcher(register(), n.conn, 1.0, PHONE)
        [refused] = await answers(n)
        assert refused.status == 405 and "REGISTER" not in refused.headers.get_all("Allow")


# --- what the log never holds ------------------------------------------------------------------------


async def test_no_password_ha1_or_digest_response_reaches_any_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with switch() as n:
        # REGISTER: challenged, then right; INVITE: challenged, then a wrong and a right password
        await n.dispatcher(register(), n.conn, 1.0, PHONE)
        challenge = (await answers(n))[-1]
        good = credentials(challenge, method="REGISTER", uri="sip:switch.example")
        await n.dispatcher(register(f"Authorization: {good}\r\n", cseq=2), n.conn, 2.0, PHONE)
        await n.dispatcher(parse(request("INVITE", "c9")), n.conn, 3.0, PHONE)
        challenge = (await answers(n))[-1]
        sent: list[str] = []
        for password in ("wrong-one", PASSWORD):
            value = credentials(challenge, method="INVITE", uri="sip:service@127.0.0.1:5060", password=password,
                                header="Proxy-Authenticate", nc=len(sent) + 1)
            sent.append(value)
            await n.dispatcher(parse(request("INVITE", "c9", cseq=2 + len(sent),
                                             extra=f"Proxy-Authorization: {value}\r\n")), n.conn, 4.0, PHONE)
        assert n.accounts == [ALICE]
    responses = [parse_challenge(v).param("response") for v in [good, *sent]]
    secrets = [PASSWORD, "wrong-one", ALICE.ha1_md5, ALICE.ha1_sha256, *responses]
    assert caplog.records, "the exchange logged nothing at all: the check below would prove nothing"
    for record in caplog.records:
        text = record.getMessage() + " " + " ".join(f"{k}={v!r}" for k, v in vars(record).items())
        for secret in secrets:
            assert secret is not None and secret not in text, f"{record.name}: {record.getMessage()}"


async def test_accounts_that_cannot_be_looked_up_get_503_not_a_false_403() -> None:
    async def restarting(user: str) -> AccountInfo | None:
        raise NoProcess("no process is registered as 'registrar'")

    broken = Authenticator(REALM, Nonces(b"n" * 32, ttl=300.0), restarting)
    async with node(authenticator=broken, challenge_calls=True) as n:
        await n.dispatcher(parse(request("INVITE", "c5")), n.conn, 1.0, PHONE)
        [challenge] = await answers(n)
        value = credentials(challenge, method="INVITE", uri="sip:service@127.0.0.1:5060", header="Proxy-Authenticate")
        await n.dispatcher(parse(request("INVITE", "c5", cseq=2, extra=f"Proxy-Authorization: {value}\r\n")),
                           n.conn, 2.0, PHONE)
        unavailable = (await answers(n))[-1]
        assert (unavailable.status, unavailable.headers.get("Retry-After")) == (503, "5") and n.specs == []
