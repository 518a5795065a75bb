"""What the edge promises of every message `switchd.sip` hands out, as one assertion."""

from __future__ import annotations

import re

from switchd.sip import (
    Connection,
    ConnectionClosed,
    NeedData,
    RemoteProtocolError,
    Request,
    Response,
    make_response,
    new_tag,
    parse_message,
    serialize,
)

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def assert_clean_text(text: str, what: str) -> None:
    """`text` encodes to UTF-8 strictly and holds no control character but HTAB."""
    text.encode("utf-8")  # UnicodeEncodeError for a surrogate the parser let through
    assert _CONTROL.search(text) is None, f"{what} {text!r} holds a control character"


def assert_storable(message: Request | Response) -> None:
    """Everything downstream reads of `message` can be stored, logged and serialised.

    Every header value, the Call-ID, the From and To tags and URIs, the top Via's branch and the
    Request-URI are clean text; `serialize` works and parses back equal (but for a repeated
    Content-Length, which it writes once); a request can be answered
    400 and 200 (with a new To tag when it has none) and the answers serialise.
    """
    for name, value in message.headers:
        assert_clean_text(name, "header name")
        assert_clean_text(value, f"{name} value")
    parts = {"Call-ID": message.call_id, "From URI": str(message.from_.uri), "To URI": str(message.to.uri),
             "From": str(message.from_), "To": str(message.to)}
    for what, tag in (("From tag", message.from_.tag), ("To tag", message.to.tag),
                      ("branch", message.top_via.branch)):
        if tag is not None:
            parts[what] = tag
    if isinstance(message, Request):
        parts["Request-URI"] = str(message.uri)
    for what, text in parts.items():
        assert_clean_text(text, what)
    wire = serialize(message)
    again = parse_message(wire)
    assert serialize(again) == wire  # serialize writes one Content-Length: compare without them
    assert [f for f in again.headers if f[0] != "Content-Length"] == [f for f in message.headers
                                                                      if f[0] != "Content-Length"]
    assert (type(again), again.body) == (type(message), message.body)
    if isinstance(message, Request) and isinstance(again, Request):
        assert (again.method, again.uri) == (message.method, message.uri)
    if isinstance(message, Request):
        for status in (400, 200):
            to_tag = new_tag() if message.to.tag is None else None
            serialize(make_response(message, status, to_tag=to_tag))


def frame_all(data: bytes) -> tuple[list[Request | Response], list[RemoteProtocolError]]:
    """Every message and every error a Connection (small limits) gives for `data`, then EOF."""
    connection = Connection(max_message_size=4096, max_line_length=1024)
    connection.receive_data(data)
    connection.receive_data(b"")
    messages: list[Request | Response] = []
    errors: list[RemoteProtocolError] = []
    for _ in range(100):  # each call consumes a message or stops
        try:
            event = connection.next_event()
        except RemoteProtocolError as exc:
            errors.append(exc)
            if exc.framing_lost:
                break
            continue
        if isinstance(event, NeedData | ConnectionClosed):
            break
        if isinstance(event, Request | Response):
            messages.append(event)
    return messages, errors
