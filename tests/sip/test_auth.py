"""Challenge / Credentials: WWW-/Proxy-Authenticate and (Proxy-)Authorization (RFC 3261 §22, RFC 2617)."""

from __future__ import annotations

import pytest

from switchd.sip import RemoteProtocolError, parse_challenge, parse_credentials


def test_a_digest_challenge_gives_its_params_unquoted() -> None:
    challenge = parse_challenge('Digest realm="atlanta.example.com", domain="sip:ss1.example.com", '
                                'qop="auth", nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", '
                                'stale=FALSE, algorithm=MD5')
    assert challenge.scheme == "Digest"
    assert challenge.realm == "atlanta.example.com"
    assert challenge.nonce == "f84f1cec41e6cbe5aea9c8e88d359"
    assert challenge.param("ALGORITHM") == "MD5" and challenge.param("opaque") == ""
    assert challenge.param("missing") is None


def test_credentials_keep_commas_inside_quoted_values() -> None:
    credentials = parse_credentials('Digest username="bob, jr", realm="biloxi.example.com", '
                                    'uri="sip:bob@biloxi.example.com", response="245f2341", nc=00000001')
    assert credentials.param("username") == "bob, jr"
    assert credentials.param("nc") == "00000001"


def test_str_writes_what_parses_back() -> None:
    challenge = parse_challenge('Digest realm="a", nonce="b"')
    assert parse_challenge(str(challenge)) == challenge


@pytest.mark.parametrize("text", ["", 'Digest realm', 'Digest realm="unterminated', "Digest a=b c=d"])
def test_malformed_auth_values_are_rejected(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_credentials(text, "Proxy-Authorization")
    assert info.value.reason == "Bad Proxy-Authorization"
