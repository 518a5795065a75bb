"""CSeq / parse_cseq (RFC 3261 §20.16, §8.1.1.5)."""

from __future__ import annotations

import pytest

from switchd.sip import CSeq, Method, RemoteProtocolError, parse_cseq


def test_a_cseq_has_a_number_and_a_method() -> None:
    assert parse_cseq("4711 INVITE") == CSeq(4711, Method.INVITE)
    assert str(CSeq(2, Method.BYE)) == "2 BYE"


def test_an_extension_method_is_kept_as_a_string() -> None:
    cseq = parse_cseq("  7   NEWMETHOD ")
    assert (cseq.seq, cseq.method) == (7, "NEWMETHOD")


@pytest.mark.parametrize("text", ["INVITE", "1", "one INVITE", "-1 INVITE", "2147483648 INVITE", "1 INV ITE",
                                  "1 INVITE;x"])
def test_a_malformed_or_too_large_cseq_is_a_bad_cseq(text: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_cseq(text)
    assert (info.value.status_hint, info.value.reason) == (400, "Bad CSeq")


def test_the_largest_sequence_number_is_2_to_the_31_minus_1() -> None:
    assert parse_cseq("2147483647 ACK").seq == 2**31 - 1
