"""The digest check: challenge, accept, refuse, and ask again (stale) — REGISTER with 401, INVITE with 407."""

from __future__ import annotations

import pytest

from switchd.billing import AccountInfo
from switchd.sip import (
    DigestAlgorithm,
    Nonces,
    Request,
    authorization,
    ha1,
    parse_challenge,
    parse_message,
)
from switchd.switch import Authenticated, Authenticator, AuthRefused, Challenged

from .transport_helpers import request

REALM = "switchd"
SECRET = b"s" * 32


def account(user: str, password: str, *, enabled: bool = True, realm: str = REALM) -> AccountInfo:
    return AccountInfo(user, realm, ha1(DigestAlgorithm.MD5, user, realm, password),
                       ha1(DigestAlgorithm.SHA256, user, realm, password), enabled)


ACCOUNTS = {"alice": account("alice", "wonderland"), "off": account("off", "pw", enabled=False)}


async def lookup(user: str) -> AccountInfo | None:
    return ACCOUNTS.get(user)


def authenticator(*, ttl: float = 300.0, secret: bytes = SECRET) -> Authenticator:
    return Authenticator(REALM, Nonces(secret, ttl=ttl), lookup)


def invite(extra: str = "", uri: str = "sip:2000@127.0.0.1:5060") -> Request:
    message = parse_message(request("INVITE", "c1", uri=uri, extra=extra))
    assert isinstance(message, Request)
    return message


def answer(challenged: Challenged, *, user: str = "alice", password: str = "wonderland", nc: int = 1,
           uri: str = "sip:2000@127.0.0.1:5060", index: int = 0, header: str = "Proxy-Authorization") -> Request:
    """The INVITE again with credentials answering the challenge's `index`-th header."""
    challenge = parse_challenge(challenged.headers[index][1])
    value = authorization(challenge, method="INVITE", uri=uri, username=user, password=password, nc=nc,
                          cnonce="0a4f113b")
    return invite(f"{header}: {value}\r\n", uri)


async def test_without_credentials_an_invite_gets_407_offering_sha256_then_md5_with_one_nonce() -> None:
    outcome = await authenticator().check(invite(), proxy=True, now=10.0)
    assert isinstance(outcome, Challenged) and outcome.status == 407 and not outcome.stale
    challenges = [parse_challenge(value) for name, value in outcome.headers]
    assert [name for name, _ in outcome.headers] == ["Proxy-Authenticate", "Proxy-Authenticate"]
    assert [c.param("algorithm") for c in challenges] == ["SHA-256", "MD5"]
    assert {c.nonce for c in challenges} == {challenges[0].nonce} and challenges[0].realm == REALM
    assert all(c.param("qop") == "auth" for c in challenges)


@pytest.mark.parametrize("index", [0, 1], ids=["SHA-256", "MD5"])
async def test_the_right_answer_under_either_algorithm_authenticates(index: int) -> None:
    auth = authenticator()
    challenged = await auth.check(invite(), proxy=True, now=10.0)
    assert isinstance(challenged, Challenged)
    outcome = await auth.check(answer(challenged, index=index), proxy=True, now=11.0)
    assert outcome == Authenticated(ACCOUNTS["alice"])


async def test_a_register_is_challenged_with_401_and_answered_in_authorization() -> None:
    auth = authenticator()
    register = parse_message(request("REGISTER", "r1", uri="sip:127.0.0.1"))
    assert isinstance(register, Request)
    challenged = await auth.check(register, proxy=False, now=0.0)
    assert isinstance(challenged, Challenged) and challenged.status == 401
    assert challenged.headers[0][0] == "WWW-Authenticate"
    value = authorization(parse_challenge(challenged.headers[0][1]), method="REGISTER", uri="sip:127.0.0.1",
                          username="alice", password="wonderland", nc=1, cnonce="c")
    again = parse_message(request("REGISTER", "r1", uri="sip:127.0.0.1", extra=f"Authorization: {value}\r\n"))
    assert isinstance(again, Request)
    assert isinstance(await auth.check(again, proxy=False, now=1.0), Authenticated)
    # the same credentials in the header of the other kind do not count
    assert isinstance(await auth.check(again, proxy=True, now=1.0), Challenged)


@pytest.mark.parametrize(("user", "password", "says"), [
    ("alice", "not-it", "wrong digest response"),
    ("mallory", "anything", "unknown"),
    ("off", "pw", "disabled"),
])
async def test_a_wrong_password_an_unknown_and_a_disabled_account_get_the_same_403(user: str, password: str,
                                                                                   says: str) -> None:
    auth = authenticator()
    challenged = await auth.check(invite(), proxy=True, now=0.0)
    assert isinstance(challenged, Challenged)
    outcome = await auth.check(answer(challenged, user=user, password=password), proxy=True, now=1.0)
    assert isinstance(outcome, AuthRefused) and (outcome.status, outcome.reason) == (403, None)
    assert says in outcome.why and password not in outcome.why


async def test_a_right_answer_under_an_expired_nonce_is_asked_again_with_stale() -> None:
    auth = authenticator(ttl=30.0)
    challenged = await auth.check(invite(), proxy=True, now=0.0)
    assert isinstance(challenged, Challenged)
    outcome = await auth.check(answer(challenged), proxy=True, now=30.0)
    assert isinstance(outcome, Challenged) and outcome.stale and outcome.status == 407
    assert parse_challenge(outcome.headers[0][1]).param("stale") == "true"
    assert isinstance(await auth.check(answer(outcome), proxy=True, now=31.0), Authenticated)


async def test_a_nonce_from_another_node_or_run_is_stale_not_an_error() -> None:
    elsewhere = await authenticator(secret=b"x" * 32).check(invite(), proxy=True, now=0.0)
    assert isinstance(elsewhere, Challenged)
    outcome = await authenticator().check(answer(elsewhere), proxy=True, now=1.0)
    assert isinstance(outcome, Challenged) and outcome.stale


async def test_a_replayed_request_is_not_taken_but_the_next_count_is() -> None:
    auth = authenticator()
    challenged = await auth.check(invite(), proxy=True, now=0.0)
    assert isinstance(challenged, Challenged)
    first = answer(challenged, nc=1)
    assert isinstance(await auth.check(first, proxy=True, now=1.0), Authenticated)
    replay = await auth.check(first, proxy=True, now=2.0)
    assert isinstance(replay, Challenged) and replay.stale and "replay" in replay.why
    assert isinstance(await auth.check(answer(challenged, nc=2), proxy=True, now=3.0), Authenticated)


async def test_credentials_for_another_realm_get_a_plain_challenge() -> None:
    value = ('Digest username="alice", realm="elsewhere", nonce="n", uri="sip:2000@127.0.0.1:5060", '
             'response="' + "0" * 32 + '", qop=auth, nc=00000001, cnonce="c"')
    outcome = await authenticator().check(invite(f"Proxy-Authorization: {value}\r\n"), proxy=True, now=0.0)
    assert isinstance(outcome, Challenged) and not outcome.stale


@pytest.mark.parametrize(("credentials", "status", "says"), [
    ('Digest username="alice", realm="switchd", nonce="n", uri="sip:2000@127.0.0.1:5060", response="x"', 400,
     "response"),
    ('Digest username="alice", realm="switchd", nonce="n", uri="sip:9999@127.0.0.1:5060", '
     'response="' + "0" * 32 + '", qop=auth, nc=00000001, cnonce="c"', 400, "uri"),
    ('Digest username="alice", realm="switchd", nonce="n", uri="sip:2000@127.0.0.1:5060", '
     'response="' + "0" * 32 + '"', 403, "qop"),
    ('Digest realm="switchd", nonce', 400, "Proxy-Authorization"),
])
async def test_unusable_credentials_are_refused(credentials: str, status: int, says: str) -> None:
    outcome = await authenticator().check(invite(f"Proxy-Authorization: {credentials}\r\n"), proxy=True, now=0.0)
    assert isinstance(outcome, AuthRefused) and outcome.status == status
    assert says in outcome.why


async def test_the_digest_uri_is_compared_as_a_uri_not_as_text() -> None:
    auth = authenticator()
    challenged = await auth.check(invite(), proxy=True, now=0.0)
    assert isinstance(challenged, Challenged)
    # the phone wrote the scheme in capitals: the same URI (RFC 3261 §19.1.4), and its digest covers
    # what it wrote
    request = answer(challenged, uri="SIP:2000@127.0.0.1:5060")
    assert isinstance(await auth.check(request, proxy=True, now=1.0), Authenticated)


async def test_a_digest_uri_of_the_request_uris_host_and_port_alone_is_accepted_as_sipp_writes_it() -> None:
    auth = authenticator()
    challenged = await auth.check(invite(), proxy=True, now=0.0)
    assert isinstance(challenged, Challenged)
    # SIPp's [authentication] digests "sip:<remote_ip>:<remote_port>" for any request it sends
    sipp_like = answer(challenged, uri="sip:127.0.0.1:5060")
    request = invite(f"Proxy-Authorization: {sipp_like.headers.get('Proxy-Authorization')}\r\n")
    assert isinstance(await auth.check(request, proxy=True, now=1.0), Authenticated)


@pytest.mark.parametrize("uri", ["sip:192.0.2.9:5060", "sip:127.0.0.1:5070", "sip:127.0.0.1", "sips:127.0.0.1:5060"])
async def test_a_digest_uri_of_another_host_port_or_scheme_is_refused(uri: str) -> None:
    auth = authenticator()
    challenged = await auth.check(invite(), proxy=True, now=0.0)
    assert isinstance(challenged, Challenged)
    signed = answer(challenged, uri=uri)  # a right response for that uri
    request = invite(f"Proxy-Authorization: {signed.headers.get('Proxy-Authorization')}\r\n")
    outcome = await auth.check(request, proxy=True, now=1.0)
    assert isinstance(outcome, AuthRefused) and (outcome.status, outcome.reason) == (400, "Bad Proxy-Authorization")


async def test_only_the_configured_algorithms_are_offered_and_accepted() -> None:
    md5_only = Authenticator(REALM, Nonces(SECRET, ttl=300.0), lookup, (DigestAlgorithm.MD5,))
    challenged = await md5_only.check(invite(), proxy=True, now=10.0)
    assert isinstance(challenged, Challenged)
    assert [parse_challenge(v).param("algorithm") for _, v in challenged.headers] == ["MD5"]
    assert isinstance(await md5_only.check(answer(challenged), proxy=True, now=11.0), Authenticated)

    sha_only = Authenticator(REALM, Nonces(SECRET, ttl=300.0), lookup, (DigestAlgorithm.SHA256,))
    challenged = await sha_only.check(invite(), proxy=True, now=10.0)
    assert isinstance(challenged, Challenged)
    md5_answer = answer(challenged, nc=1).headers.get("Proxy-Authorization")
    assert md5_answer is not None and "SHA-256" in md5_answer
    # a client answering with MD5 under a SHA-256-only challenge (its nonce is good) is refused
    nonce = parse_challenge(challenged.headers[0][1]).nonce
    forged = parse_challenge(f'Digest realm="{REALM}", nonce="{nonce}", algorithm=MD5, qop="auth"')
    value = authorization(forged, method="INVITE", uri="sip:2000@127.0.0.1:5060", username="alice",
                          password="wonderland", nc=1, cnonce="c")
    outcome = await sha_only.check(invite(f"Proxy-Authorization: {value}\r\n"), proxy=True, now=11.0)
    assert isinstance(outcome, AuthRefused) and outcome.status == 403 and "MD5, not offered" in outcome.why
