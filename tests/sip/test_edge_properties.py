"""Properties of the edge: whatever bytes arrive, what the framer hands out is storable everywhere.

Every header value, Call-ID, tag and URI of a message `Connection` hands out is strict UTF-8
without a control character; it serialises and parses back equal; it can be answered. (The
switch's `error_response` for every error's partial is checked in tests/switch.)
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import Request, Response
from tests.sip._edge import assert_storable, frame_all
from tests.sip._mutations import VALID, mangled
from tests.sip.messages import OPTIONS


def handed_out(data: bytes) -> list[Request | Response]:
    """Every message a Connection hands out for `data` then a clean OPTIONS, then EOF."""
    return frame_all(data + OPTIONS)[0]


def test_the_valid_samples_are_storable() -> None:
    for data in VALID:
        [message, _] = handed_out(data)
        assert_storable(message)


@settings(max_examples=1500, deadline=None)
@given(mangled())
def test_whatever_a_mangled_message_becomes_what_is_handed_out_is_storable(data: bytes) -> None:
    for message in handed_out(data):
        assert_storable(message)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1000))
def test_arbitrary_bytes_never_hand_out_anything_unstorable(data: bytes) -> None:
    for message in handed_out(data):
        assert_storable(message)
