"""The error tree: what a caller catches and what it learns from it."""

from __future__ import annotations

from switchd.sip import LocalProtocolError, ProtocolError, RemoteProtocolError, SipError


def test_both_protocol_errors_are_sip_errors() -> None:
    assert issubclass(RemoteProtocolError, ProtocolError) and issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(ProtocolError, SipError) and issubclass(SipError, Exception)


def test_a_remote_error_carries_what_to_answer_and_whether_to_close() -> None:
    error = RemoteProtocolError("too big", status_hint=513, framing_lost=True, limit="max_message_size")
    assert (error.status_hint, error.reason, error.framing_lost, error.limit) == (
        513, "Message Too Large", True, "max_message_size",
    )
    assert error.partial is None and str(error) == "too big"


def test_the_default_answer_is_400_bad_request() -> None:
    error = RemoteProtocolError("x")
    assert (error.status_hint, error.reason, error.framing_lost) == (400, "Bad Request", False)


def test_a_local_error_hints_500() -> None:
    assert LocalProtocolError("bug").status_hint == 500
