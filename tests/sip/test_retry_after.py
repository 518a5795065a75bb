"""RetryAfter / parse_retry_after (RFC 3261 §20.33)."""

from __future__ import annotations

import pytest

from switchd.sip import RemoteProtocolError, RetryAfter, parse_retry_after


def test_seconds_comment_and_duration_are_read() -> None:
    value = parse_retry_after("18000;duration=3600")
    assert (value.seconds, value.duration, value.comment) == (18000, 3600, None)
    value = parse_retry_after("120 (I'm in a meeting)")
    assert (value.seconds, value.comment) == (120, "I'm in a meeting")


def test_str_writes_what_parses_back() -> None:
    value = RetryAfter(30, "overload", (("duration", "60"),))
    assert str(value) == "30 (overload);duration=60"
    assert parse_retry_after(str(value)) == value


@pytest.mark.parametrize("text", ["", "soon", "-5", "10;duration=abc", "10 (unclosed"])
def test_a_malformed_retry_after_is_rejected(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_retry_after(text)
    assert info.value.reason == "Bad Retry-After"
