"""The edge: what the parser refuses so that nothing it hands out is unstorable or unserialisable.

Text must be UTF-8 (RFC 3261 §7.3.1), no control character may sit inside a line, Call-ID, tags
and the branch follow their grammar, From and To URIs parse, a tel: URI is an RFC 3966 number.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.sip import (
    Connection,
    RemoteProtocolError,
    Request,
    SipUri,
    dialled_number,
    parse_message,
    parse_uri,
)
from tests.sip.messages import INVITE, OPTIONS

NEXT = OPTIONS  # sent after a bad message: framing must hold, so it comes out


def frame(data: bytes) -> tuple[RemoteProtocolError | None, Request | None]:
    """Feed `data` then a good OPTIONS to a Connection: the error the first raised, and the OPTIONS."""
    connection = Connection()
    connection.receive_data(data + NEXT)
    error: RemoteProtocolError | None = None
    try:
        connection.next_event()
    except RemoteProtocolError as exc:
        error = exc
    after = connection.next_event()
    return error, after if isinstance(after, Request) else None


def refused(data: bytes) -> RemoteProtocolError:
    error, after = frame(data)
    assert error is not None, "accepted"
    assert not error.framing_lost and after is not None and after.call_id == "options-1"
    return error


# --- encoding -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "header"), [
    (b"Call-ID: 3848276298220188511@", b"Call-ID: 38482\xff76298220188511@", "Call-ID"),
    (b";tag=9fxced76sl", b";tag=9fx\xc3\x28ed76sl", "From"),
    (b"To: Bob <sip:bob@", b"To: Bob <sip:b\xe9b@", "To"),
    (b"branch=z9hG4bK74bf9", b"branch=z9hG4bK\xfe74bf9", "Via"),
    (b"From: Alice", b"From: \"Jos\xe9\"", "From"),
    (b"User-Agent: SIPp/3.7", b"User-Agent: SIPp/3.7 \xc0\xaf", "User-Agent"),  # an overlong encoding
    (b"INVITE sip:bob@", b"INVITE sip:b\xf6b@", "Request-Line"),
])
def test_a_head_that_is_not_utf8_is_a_400_naming_the_header_and_the_byte_offset(
        old: bytes, new: bytes, header: str) -> None:
    data = INVITE.replace(old, new)
    error = refused(data)
    assert (error.status_hint, error.reason) == (400, "Invalid UTF-8")
    with pytest.raises(UnicodeDecodeError) as bad_byte:
        data.decode("utf-8")
    assert f"byte {bad_byte.value.start} of the head" in str(error) and header in str(error)


def test_valid_utf8_text_is_kept() -> None:
    message = parse_message(INVITE.replace(b"From: Alice", "From: \"José 日本\"".encode()))
    assert message.from_.display_name == "José 日本"


# --- control characters -------------------------------------------------------------------------


@pytest.mark.parametrize("ctl", [b"\r", b"\n", b"\x00", b"\x01", b"\x1b", b"\x0b", b"\x7f"])
@pytest.mark.parametrize(("old", "header"), [
    (b"SIPp/3.7", "User-Agent"), (b"9fxced76sl", "From"), (b"3848276298220188511@", "Call-ID"),
    (b"z9hG4bK74bf9", "Via"), (b"application/sdp", "Content-Type"),
])
def test_a_control_character_inside_a_header_is_a_400_bad_header_naming_it(
        ctl: bytes, old: bytes, header: str) -> None:
    error = refused(INVITE.replace(old, old[:3] + ctl + old[3:], 1))
    assert (error.status_hint, error.reason) == (400, "Bad Header")
    assert header in str(error)


def test_a_control_character_in_a_header_name_is_a_400() -> None:
    error = refused(INVITE.replace(b"User-Agent:", b"User\x01Agent:"))
    assert (error.status_hint, error.reason) == (400, "Bad Header")


@pytest.mark.parametrize("ctl", [b"\r", b"\n", b"\x00", b"\x1f"])
def test_a_control_character_in_the_start_line_is_a_400(ctl: bytes) -> None:
    error = refused(INVITE.replace(b"sip:bob@biloxi", b"sip:bob@bil" + ctl + b"oxi", 1))
    assert error.status_hint == 400 and "Request-Line" in str(error)


def test_htab_and_folded_lines_are_not_control_characters() -> None:
    data = INVITE.replace(b"User-Agent: SIPp/3.7", b"User-Agent: SIPp/3.7\tx\r\n\tfolded")
    assert parse_message(data).headers.get("User-Agent") == "SIPp/3.7\tx folded"


# --- grammar: Call-ID, tags, branch, From and To ------------------------------------------------


@pytest.mark.parametrize("call_id", ["a@b@c", "@host", "id@", "a{b}@h[1]", "x\\y\"z"])
def test_call_id_is_word_at_word(call_id: str) -> None:
    data = INVITE.replace(b"3848276298220188511@atlanta.example.com", call_id.encode())
    if call_id.count("@") <= 1 and not call_id.startswith("@") and not call_id.endswith("@"):
        assert parse_message(data).call_id == call_id  # words take ( ) < > : \ " / [ ] ? { }
    else:
        assert refused(data).reason == "Bad Call-ID"


@pytest.mark.parametrize(("old", "new", "reason"), [
    (b";tag=9fxced76sl", b';tag="9fx"', "Bad From"),
    (b";tag=9fxced76sl", b";tag=9f/x", "Bad From"),
    (b"To: Bob <sip:bob@biloxi.example.com>", b"To: Bob <sip:bob@biloxi.example.com>;tag=a:b", "Bad To"),
    (b"branch=z9hG4bK74bf9", b'branch="z9hG4bK74bf9"', "Bad Via"),
    (b"branch=z9hG4bK74bf9", b"branch=z9hG4bK/74bf9", "Bad Via"),
])
def test_tags_and_the_top_branch_are_tokens(old: bytes, new: bytes, reason: str) -> None:
    assert refused(INVITE.replace(old, new)).reason == reason


@pytest.mark.parametrize(("old", "new", "reason"), [
    (b"<sip:alice@atlanta.example.com>", b"<sip:alice@atlanta.example.com:99999>", "Bad From"),
    (b"<sip:alice@atlanta.example.com>", b"<sip:@atlanta.example.com>", "Bad From"),
    (b"<sip:bob@biloxi.example.com>", b"<sip:bob@bi loxi>", "Bad To"),
    (b"<sip:bob@biloxi.example.com>", b"<tel:12ab>", "Bad To"),
])
def test_a_malformed_from_or_to_uri_is_refused_when_the_message_is_read(old: bytes, new: bytes, reason: str) -> None:
    assert refused(INVITE.replace(old, new, 1)).reason == reason


# --- tel: and user=phone (RFC 3966) ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "number"), [
    ("tel:+14155550199", "+14155550199"),
    ("tel:+1-415-555-0199", "+14155550199"),
    ("tel:+1.(415).555.0199;ext=12", "+14155550199"),
    ("TEL:+44-20-7946-0000;isub=1234", "+442079460000"),
    ("tel:7042;phone-context=example.com", "7042"),
    ("tel:*31#;phone-context=+1415", "*31#"),
    ("tel:863-1234;phone-context=+1-914-555", "8631234"),
    ("sip:+1-415-555-0199@gw.example.com;user=phone", "+14155550199"),
    ("sip:%2A31%23;phone-context=+1415@gw.example.com;user=phone", "*31#"),
    ("sip:+15551234567@switch.example.com", "+15551234567"),
    ("sip:service@switch.example.com", "service"),
    ("sip:switch.example.com", None),
    ("urn:service:sos", None),
])
def test_the_dialled_number_of_a_uri(text: str, number: str | None) -> None:
    assert dialled_number(parse_uri(text)) == number


@pytest.mark.parametrize("text", [
    "tel:", "tel:+", "tel:++1", "tel:+1-41x5", "tel:5550199", "tel:+1415;ext=x1", "tel:+1415;phone-context=",
    "tel:7042;phone-context=-bad-", "tel:+1415;a b=c", "tel:+1415;=x", "tel:+1 415", "tel:+1%zz",
    "sip:alice@example.com;user=phone", "sip:example.com;user=phone", "sip:5550199@gw;user=phone",
])
def test_a_telephone_uri_that_breaks_rfc_3966_does_not_parse(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_uri(text, "Request-URI")


def test_a_non_sip_uri_holds_only_uri_characters() -> None:
    for text in ["http://example.com/\u00e9", "urn:a b", "mailto:a\x00b", "http://x/\udcff"]:
        with pytest.raises(RemoteProtocolError):
            parse_uri(text)
    assert parse_uri("http://example.com/a?b=c#d").opaque == "//example.com/a?b=c#d"


def test_dialled_number_checks_a_hand_built_tel_uri_too() -> None:
    with pytest.raises(RemoteProtocolError):
        dialled_number(SipUri(scheme="tel", opaque="12ab"))


# --- an over-long line that never ends --------------------------------------------------------------


def test_an_endless_line_loses_framing_but_keeps_the_lines_before_it_for_the_400() -> None:
    head = INVITE[:INVITE.index(b"User-Agent")]
    connection = Connection(max_line_length=100)
    connection.receive_data(head + b"Subject: " + b"x" * 200)
    with pytest.raises(RemoteProtocolError) as caught:
        connection.next_event()
    error = caught.value
    assert (error.status_hint, error.reason, error.framing_lost, error.limit) == (
        400, "Line Too Long", True, "max_line_length")
    assert isinstance(error.partial, Request)
    assert error.partial.headers.get("Via") == "SIP/2.0/TCP client.atlanta.example.com:5060;branch=z9hG4bK74bf9"
    assert error.partial.headers.get("Call-ID") == "3848276298220188511@atlanta.example.com"


def test_an_endless_start_line_has_no_partial() -> None:
    connection = Connection(max_line_length=100)
    connection.receive_data(b"INVITE sip:" + b"x" * 200)
    with pytest.raises(RemoteProtocolError) as caught:
        connection.next_event()
    assert caught.value.framing_lost and caught.value.partial is None


@given(st.lists(st.tuples(st.sampled_from("0123456789"), st.sampled_from(["", "", "-", ".", "(", ")"])),
                min_size=1, max_size=15),
       st.sampled_from(["", ";ext=12", ";isub=a1", ";phone-context=+1", ";x-y=z"]))
def test_a_global_tel_number_dials_its_digits_whatever_its_visual_separators(
        pairs: list[tuple[str, str]], params: str) -> None:
    written = "".join(digit + separator for digit, separator in pairs)
    uri = parse_uri(f"tel:+{written}{params}")
    assert dialled_number(uri) == "+" + "".join(digit for digit, _ in pairs)
    assert parse_uri(str(uri)) == uri
