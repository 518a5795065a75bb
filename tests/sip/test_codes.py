"""Method and Status: names as RFC 3261 spells them, reason phrases."""

from __future__ import annotations

from switchd.sip import Method, Status, codes


def test_methods_are_strings_equal_to_their_names() -> None:
    assert Method.INVITE == "INVITE" and f"{Method.BYE}" == "BYE"


def test_status_codes_are_ints_with_their_reason_phrase() -> None:
    assert int(Status.BUSY_HERE) == 486 and Status.BUSY_HERE.phrase == "Busy Here"
    assert Status(481).phrase == "Call/Transaction Does Not Exist"
    assert int(codes.MESSAGE_TOO_LARGE) == 513 and codes.SERVICE_UNAVAILABLE.phrase == "Service Unavailable"


def test_the_contract_codes_all_exist() -> None:
    for code in (100, 180, 183, 200, 400, 404, 405, 408, 480, 481, 486, 487, 500, 501, 503, 505, 513, 603):
        assert Status(code).phrase
