"""Nonces: issued with an HMAC so any of them verifies without state, expiring, and nonce counts that only go up."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.sip import NonceCheck, Nonces

SECRET = b"k" * 32


def test_a_fresh_nonce_is_valid_until_its_ttl_then_stale() -> None:
    nonces = Nonces(SECRET, ttl=300.0)
    nonce = nonces.issue(1000.0)
    assert nonces.check(nonce, 1000.0) is NonceCheck.VALID
    assert nonces.check(nonce, 1299.9) is NonceCheck.VALID
    assert nonces.check(nonce, 1300.0) is NonceCheck.STALE


def test_each_nonce_is_new() -> None:
    nonces = Nonces(SECRET, ttl=300.0)
    assert len({nonces.issue(5.0) for _ in range(100)}) == 100


def test_a_nonce_of_another_secret_or_a_tampered_one_is_not_ours() -> None:
    nonce = Nonces(SECRET, ttl=300.0).issue(10.0)
    assert Nonces(b"other" * 8, ttl=300.0).check(nonce, 10.0) is NonceCheck.UNKNOWN
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[0] ^= 1  # the issue time moved: the HMAC no longer matches
    assert Nonces(SECRET, ttl=300.0).check(base64.urlsafe_b64encode(bytes(raw)).decode(), 10.0) is NonceCheck.UNKNOWN


def test_a_nonce_from_the_future_is_not_ours() -> None:
    nonces = Nonces(SECRET, ttl=300.0)
    assert nonces.check(nonces.issue(500.0), 100.0) is NonceCheck.UNKNOWN


@given(st.text(max_size=80))
def test_any_text_checks_as_unknown_without_raising(text: str) -> None:
    assert Nonces(SECRET, ttl=300.0).check(text, 0.0) is NonceCheck.UNKNOWN


def test_a_nonce_count_must_grow_and_a_repeat_is_a_replay() -> None:
    nonces = Nonces(SECRET, ttl=300.0)
    nonce = nonces.issue(0.0)
    assert nonces.count(nonce, 1, 0.0)
    assert not nonces.count(nonce, 1, 0.0)  # the same request again
    assert nonces.count(nonce, 3, 0.0)  # counts may skip (a request lost on the way)
    assert not nonces.count(nonce, 2, 0.0)
    assert nonces.count(nonces.issue(0.0), 1, 0.0)  # another nonce counts on its own


def test_memory_stays_bounded_and_a_forgotten_nonce_is_never_taken_again() -> None:
    nonces = Nonces(SECRET, ttl=300.0, max_tracked=4)
    issued = [nonces.issue(float(i)) for i in range(10)]
    for nonce in issued:
        assert nonces.count(nonce, 1, 10.0)
    assert nonces.tracked <= 4
    # The oldest were forgotten to make room: one of them again could be a replay, so it is refused
    # (the client is asked for a new nonce: stale), never counted as new.
    assert not nonces.count(issued[0], 2, 10.0)
    assert nonces.count(issued[-1], 2, 10.0)


def test_expired_entries_are_dropped_first() -> None:
    nonces = Nonces(SECRET, ttl=10.0, max_tracked=2)
    old = nonces.issue(0.0)
    assert nonces.count(old, 1, 0.0)
    young = nonces.issue(50.0)
    newest = nonces.issue(51.0)
    assert nonces.count(young, 1, 51.0) and nonces.count(newest, 1, 51.0)
    assert nonces.count(young, 2, 51.0)  # `old` (expired) made the room, not `young`


@pytest.mark.parametrize(("ttl", "tracked"), [(0.0, 10), (-1.0, 10), (10.0, 0)])
def test_settings_are_checked(ttl: float, tracked: int) -> None:
    with pytest.raises(ValueError):
        Nonces(SECRET, ttl=ttl, max_tracked=tracked)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        Nonces(b"short", ttl=10.0)
