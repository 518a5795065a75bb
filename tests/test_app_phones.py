"""The whole node with phones: a phone registers with digest, another calls it with digest, the CDR names the caller.

Over real TCP on 127.0.0.1 against `serve` (the tree `switchd run` runs), with accounts added to
its database as `switchd accounts add` adds them. Nothing on loopback is trusted here: every call
and registration must authenticate.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import trio
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from switchd.app import migrate, serve
from switchd.billing import Cdr, Disposition, add_account, open_engine
from switchd.config import Address, Config, loads
from switchd.otp import stop
from switchd.sip import (
    DigestAlgorithm,
    Request,
    Response,
    authorization,
    ha1,
    make_response,
    parse_challenge,
    parse_credentials,
    serialize,
)
from switchd.switch import TrunkStatus, listening_on, trunk_status

from .switch.transport_helpers import Peer

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret"}


def make_config(tmp_path: Path) -> Config:
    config = loads('node = "phones"\ndata_dir = "data"\n[sip]\ndomain = "127.0.0.1"\n[auth]\nrealm = "pbx.test"\n'
                   '[routing]\n', base_dir=tmp_path)
    config = dataclasses.replace(config, sip=dataclasses.replace(config.sip, listen=Address("127.0.0.1", 0)))
    migrate(config)
    engine = open_engine(config.database.url)
    with sessionmaker(engine).begin() as session:
        for user, password in PASSWORDS.items():
            add_account(session, user, "pbx.test", ha1_md5=ha1(DigestAlgorithm.MD5, user, "pbx.test", password),
                        ha1_sha256=ha1(DigestAlgorithm.SHA256, user, "pbx.test", password), rate_plan="staff")
    engine.dispose()
    return config


def message(method: str, user: str, *, uri: str, call_id: str, cseq: int, contact: str,
            extra: str = "", body: bytes = b"", to: str | None = None) -> bytes:
    to = to or (f"<{uri}>" if method == "INVITE" else f"<sip:{user}@127.0.0.1>")
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-{call_id}-{cseq}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@127.0.0.1>;tag=t-{user}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Contact: {contact}\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def final(peer: Peer) -> Response:
    while True:
        answer = await peer.read()
        assert isinstance(answer, Response), answer
        if answer.status >= 200:
            return answer


async def authenticated(peer: Peer, method: str, user: str, *, uri: str, call_id: str, contact: str,
                        body: bytes = b"") -> Response:
    """Send the request, answer its challenge with `user`'s password, and return the final answer to that."""
    await peer.send(message(method, user, uri=uri, call_id=call_id, cseq=1, contact=contact, body=body))
    challenge = await final(peer)
    header, answer = ("WWW-Authenticate", "Authorization") if method == "REGISTER" else (
        "Proxy-Authenticate", "Proxy-Authorization")
    assert challenge.status == (401 if method == "REGISTER" else 407)
    value = authorization(parse_challenge(challenge.headers.get_all(header)[0]), method=method, uri=uri,
                          username=user, password=PASSWORDS[user], nc=1, cnonce="c")
    await peer.send(message(method, user, uri=uri, call_id=call_id, cseq=2, contact=contact,
                            extra=f"{answer}: {value}\r\n", body=body))
    return await final(peer)


async def test_a_phone_registers_and_another_calls_it_by_name_with_digest_on_both(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    [bobs_phone] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    bob_port = bobs_phone.socket.getsockname()[1]
    bob_contact = f"<sip:bob-desk@127.0.0.1:{bob_port};transport=tcp>"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, config)
        [(host, port)] = await listening_on()
        bob = Peer(await trio.open_tcp_stream(host, port))
        ok = await authenticated(bob, "REGISTER", "bob", uri="sip:127.0.0.1", call_id="reg-bob", contact=bob_contact)
        assert ok.status == 200 and ok.headers.get_all("Contact") == [f"{bob_contact};expires=3600"]

        nursery.start_soon(_answer_as_bob, bobs_phone)
        alice = Peer(await trio.open_tcp_stream(host, port))
        with trio.fail_after(10):
            ringing = await authenticated(alice, "INVITE", "alice", uri="sip:bob@127.0.0.1", call_id="call-1",
                                          contact="<sip:alice@127.0.0.1:5999;transport=tcp>", body=b"v=0\r\n")
            assert ringing.status == 200, ringing  # bob's phone answered (below, in the nursery)
        await alice.send(message("ACK", "alice", uri="sip:bob@127.0.0.1", call_id="call-1", cseq=2,
                                 contact="<sip:alice@127.0.0.1:5999>",
                                 to=f"<sip:bob@127.0.0.1>;tag={ringing.to.tag}"))
        await stop("switchd", "shutdown", timeout=30)  # the drain ends the call: BYE both ways, CDR closed
    await bobs_phone.aclose()
    engine = open_engine(config.database.url)
    try:
        with Session(engine) as session:
            [cdr] = session.scalars(select(Cdr)).all()
    finally:
        engine.dispose()
    assert (cdr.account, cdr.rate_plan, cdr.callee_raw, cdr.route_id) == ("alice", "staff", "bob", "registered")
    assert cdr.disposition is Disposition.ANSWERED


async def _answer_as_bob(listener: trio.SocketListener) -> None:
    """Bob's phone: take the connection the switch opens to its contact and answer the INVITE."""
    phone = Peer(await listener.accept())
    invite = await phone.read()
    assert isinstance(invite, Request) and invite.method == "INVITE"
    await phone.send(serialize(make_response(invite, 200, to_tag="bob-tag", headers=[
        ("Contact", "<sip:bob-desk@127.0.0.1>"), ("Content-Type", "application/sdp")], body=b"v=0\r\n")))
    while (got := await phone.read()) is not None:  # the ACK, then the switch's BYE
        if isinstance(got, Request) and got.method == "BYE":
            await phone.send(serialize(make_response(got, 200)))


async def test_the_node_registers_with_its_trunk_and_unregisters_when_it_stops(tmp_path: Path) -> None:
    """The registrations start after the links (REGISTER goes out on the gateway's connection, its
    answers come back by Call-ID) and stop before them (the un-REGISTER still gets out)."""
    [carrier] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = carrier.socket.getsockname()[1]
    config = loads(f"""
node = "trunked"
data_dir = "data"
[[gateways]]
name = "carrier"
address = "127.0.0.1:{port}"
registration = {{ username = "4420790001", password = "trunk-secret", expires = 600, domain = "carrier.test" }}
[[routes]]
prefix = ""
gateways = ["carrier"]
""", base_dir=tmp_path)
    config = dataclasses.replace(config, sip=dataclasses.replace(config.sip, listen=Address("127.0.0.1", 0)))
    seen: list[Request] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, config)
        with trio.fail_after(10):
            peer = Peer(await carrier.accept())
            for answer in (401, 200):
                register = await peer.read()
                assert isinstance(register, Request) and register.method == "REGISTER"
                seen.append(register)
                headers = [("WWW-Authenticate", 'Digest realm="carrier.test", nonce="abc", qop="auth"')] \
                    if answer == 401 else [("Contact", f"{register.headers.get('Contact')};expires=600")]
                await peer.send(serialize(make_response(register, answer, to_tag="c", headers=headers)))
            while (await trunk_status("carrier")).status is not TrunkStatus.REGISTERED:
                await trio.sleep(0.01)
        stopping = trio.Event()

        async def stop_node() -> None:
            await stop("switchd", "shutdown", timeout=30)
            stopping.set()

        nursery.start_soon(stop_node)
        with trio.fail_after(10):
            unregister = await peer.read()
            assert isinstance(unregister, Request)
            await peer.send(serialize(make_response(unregister, 200, to_tag="c")))
            await stopping.wait()
    await carrier.aclose()
    credentials = parse_credentials(seen[1].headers.get_all("Authorization")[0])
    assert (credentials.param("username"), credentials.param("uri")) == ("4420790001", "sip:carrier.test")
    assert str(seen[0].to.uri) == "sip:4420790001@carrier.test"
    assert (unregister.method, unregister.headers.get("Expires"), unregister.call_id) == (
        "REGISTER", "0", seen[0].call_id)


def test_the_domain_served_is_sip_domain_its_other_names_and_the_listen_host() -> None:
    config = loads('[sip]\nlisten = "192.0.2.10:5060"\ndomain = "PBX.test"\n[registrar]\ndomains = ["alias.test"]\n')
    assert config.served_domains() == {"pbx.test", "alias.test", "192.0.2.10"}
    assert config.address_only_domains() == {"192.0.2.10"}  # there a name without an account is routed by prefix
    wildcard = loads('[sip]\nlisten = "0.0.0.0:5060"\n')
    assert wildcard.served_domains() == frozenset()
