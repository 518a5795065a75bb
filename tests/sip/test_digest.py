"""Digest computation and credentials (RFC 2617 §3.2, RFC 7616 §3.9.1, RFC 8760 SHA-256 for SIP).

The worked examples of the RFCs are the fixed points; hypothesis checks that what a client
computes with `authorization` a server accepts with `verify_response`, for any text, and that
nothing but RemoteProtocolError comes out of reading credentials.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.sip import (
    DigestAlgorithm,
    LocalProtocolError,
    RemoteProtocolError,
    SipError,
    authorization,
    challenge_value,
    digest_credentials,
    digest_response,
    ha1,
    parse_challenge,
    parse_credentials,
    verify_response,
)

MD5 = DigestAlgorithm.MD5
SHA256 = DigestAlgorithm.SHA256

# RFC 2617 §3.5 (its password is "Circle Of Life"; RFC 7616's is "Circle of Life").
RFC2617 = {"realm": "testrealm@host.com", "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
           "cnonce": "0a4f113b", "password": "Circle Of Life"}
# RFC 7616 §3.9.1, the example RFC 8760 §2 points at for SHA-256.
RFC7616 = {"realm": "http-auth@example.org", "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
           "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "password": "Circle of Life"}


@pytest.mark.parametrize(("example", "algorithm", "expected"), [
    (RFC2617, MD5, "6629fae49393a05397450978507c4ef1"),
    (RFC7616, MD5, "8ca523f5e9506fed4657c9700eebdbec"),
    (RFC7616, SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_the_rfc_worked_examples_give_their_responses(example: dict[str, str], algorithm: DigestAlgorithm,
                                                      expected: str) -> None:
    secret = ha1(algorithm, "Mufasa", example["realm"], example["password"])
    response = digest_response(algorithm, secret, method="GET", uri="/dir/index.html", nonce=example["nonce"],
                               qop="auth", nc="00000001", cnonce=example["cnonce"])
    assert response == expected


def test_without_qop_the_rfc2069_form_is_computed() -> None:
    # RFC 2617 §3.5's inputs with no qop: H(HA1:nonce:HA2), as RFC 2069 clients and some carriers use.
    secret = ha1(MD5, "Mufasa", RFC2617["realm"], RFC2617["password"])
    assert digest_response(MD5, secret, method="GET", uri="/dir/index.html", nonce=RFC2617["nonce"],
                           qop=None, nc=None, cnonce=None) == "670fd8c2df070c60b045671b8b24ff02"


def test_the_rfc7616_authorization_header_is_accepted_by_the_server_side() -> None:
    credentials = parse_credentials(
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    digest = digest_credentials(credentials)
    assert (digest.username, digest.algorithm, digest.nonce_count) == ("Mufasa", SHA256, 1)
    secret = ha1(SHA256, "Mufasa", "http-auth@example.org", "Circle of Life")
    assert verify_response(digest, secret, "GET")
    assert not verify_response(digest, ha1(SHA256, "Mufasa", "http-auth@example.org", "circle of life"), "GET")


def test_a_challenge_offers_qop_auth_and_says_stale_only_when_it_is() -> None:
    fresh = parse_challenge(challenge_value("switchd", "n1", SHA256))
    stale = parse_challenge(challenge_value("switchd", "n1", MD5, stale=True))
    assert (fresh.realm, fresh.nonce, fresh.param("algorithm"), fresh.param("qop")) == ("switchd", "n1", "SHA-256",
                                                                                      "auth")
    assert fresh.param("stale") is None and stale.param("stale") == "true"
    assert stale.param("algorithm") == "MD5"


def test_the_client_answers_the_algorithm_and_qop_it_was_offered() -> None:
    challenge = parse_challenge('Digest realm="carrier.example", nonce="abc", algorithm=SHA-256, qop="auth,auth-int"')
    value = parse_credentials(authorization(challenge, method="REGISTER", uri="sip:carrier.example",
                                            username="4420", password="pw", nc=3, cnonce="c1"))
    digest = digest_credentials(value)
    assert (digest.algorithm, digest.qop, digest.nc, digest.cnonce) == (SHA256, "auth", "00000003", "c1")
    assert verify_response(digest, ha1(SHA256, "4420", "carrier.example", "pw"), "REGISTER")


def test_the_client_answers_a_challenge_without_qop_without_nc_or_cnonce() -> None:
    challenge = parse_challenge('Digest realm="old.example", nonce="xyz", opaque="o"')
    value = parse_credentials(authorization(challenge, method="REGISTER", uri="sip:old.example",
                                            username="u", password="p", nc=1, cnonce="c"))
    assert value.param("qop") is None and value.param("nc") is None and value.param("cnonce") is None
    assert value.param("opaque") == "o" and value.param("algorithm") == "MD5"
    expected = digest_response(MD5, ha1(MD5, "u", "old.example", "p"), method="REGISTER", uri="sip:old.example",
                               nonce="xyz", qop=None, nc=None, cnonce=None)
    assert value.param("response") == expected


@pytest.mark.parametrize("challenge", [
    'Digest realm="r", nonce="n", algorithm=SHA-512-256',
    'Digest realm="r", nonce="n", qop="auth-int"',
    'Digest realm="r"',
    'Basic realm="r"',
])
def test_the_client_refuses_what_it_cannot_answer(challenge: str) -> None:
    with pytest.raises(LocalProtocolError):
        authorization(parse_challenge(challenge), method="REGISTER", uri="sip:r", username="u", password="p",
                      nc=1, cnonce="c")


GOOD = ('Digest username="alice", realm="switchd", nonce="n", uri="sip:switchd", qop=auth, nc=0000000a, '
        'cnonce="c", response="' + "0" * 32 + '"')


@pytest.mark.parametrize(("change", "why"), [
    (("Digest ", "Basic "), "scheme"),
    (('username="alice", ', ""), "username"),
    ((', nonce="n"', ""), "nonce"),
    (("nc=0000000a", "nc=12"), "nc"),
    (("nc=0000000a", "nc=0000000g"), "nc"),
    (("qop=auth", "qop=auth-int"), "qop"),
    ((', cnonce="c"', ""), "cnonce"),
    (('response="' + "0" * 32, 'response="' + "0" * 31), "response"),
    (('response="' + "0" * 32, 'response="' + "0" * 32 + '", algorithm=SHA-256'), "response"),
    (("Digest ", "Digest algorithm=SHA-1, "), "algorithm"),
])
def test_credentials_missing_or_malformed_fields_are_refused(change: tuple[str, str], why: str) -> None:
    text = GOOD.replace(*change)
    with pytest.raises(RemoteProtocolError) as info:
        digest_credentials(parse_credentials(text))
    assert why in str(info.value)


def test_nc_is_a_count_in_hex() -> None:
    assert digest_credentials(parse_credentials(GOOD)).nonce_count == 10


_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)


@given(user=_TEXT, realm=_TEXT, password=_TEXT, nonce=_TEXT, uri=_TEXT, nc=st.integers(1, 2**32 - 1),
       cnonce=_TEXT, algorithm=st.sampled_from(list(DigestAlgorithm)))
def test_what_the_client_computes_the_server_accepts(user: str, realm: str, password: str, nonce: str, uri: str,
                                                     nc: int, cnonce: str, algorithm: DigestAlgorithm) -> None:
    challenge = parse_challenge(challenge_value(realm, nonce, algorithm))
    value = parse_credentials(authorization(challenge, method="INVITE", uri=uri, username=user, password=password,
                                            nc=nc, cnonce=cnonce))
    digest = digest_credentials(value)
    assert (digest.username, digest.realm, digest.nonce, digest.uri) == (user, realm, nonce, uri)
    assert digest.nonce_count == nc
    assert verify_response(digest, ha1(algorithm, user, realm, password), "INVITE")
    assert not verify_response(digest, ha1(algorithm, user, realm, password + "x"), "INVITE")
    assert not verify_response(digest, ha1(algorithm, user, realm, password), "REGISTER")


@given(st.text(max_size=200))
def test_reading_any_credentials_raises_nothing_but_a_remote_protocol_error(text: str) -> None:
    try:
        digest_credentials(parse_credentials(text))
    except RemoteProtocolError:
        pass


@given(st.text(max_size=120))
def test_answering_any_challenge_raises_nothing_but_a_sip_error(text: str) -> None:
    try:
        challenge = parse_challenge(text)
    except RemoteProtocolError:
        return
    try:
        authorization(challenge, method="REGISTER", uri="sip:x", username="u", password="p", nc=1, cnonce="c")
    except SipError:
        pass
