"""Serialise Request / Response to wire bytes.

Content-Length is always written and always the body's real length (RFC 3261 §18.3 makes it
mandatory on TCP); it replaces any Content-Length field in place, or ends the headers. Unknown
headers parsed from the wire are written back byte-for-byte; known ones as ``Full-Name: value``.
"""

from __future__ import annotations

from ._errors import LocalProtocolError
from ._grammar import TOKEN
from ._message import Request, Response

__all__ = ["serialize"]


def serialize(message: Request | Response) -> bytes:
    """The wire form of `message`; LocalProtocolError if it cannot be valid SIP."""
    body = message.body
    if not isinstance(body, bytes):
        raise LocalProtocolError(f"body must be bytes, not {type(body).__name__}")
    if isinstance(message, Request):
        method = str(message.method)
        uri = str(message.uri)
        if not TOKEN.fullmatch(method):
            raise LocalProtocolError(f"method {method!r} is not a token")
        if not uri or any(c in uri for c in " \t\r\n"):
            raise LocalProtocolError(f"Request-URI {uri!r} is empty or contains whitespace")
        lines = [f"{method} {uri} SIP/2.0"]
    else:
        status = message.status
        reason = message.reason
        if not 100 <= status <= 699:
            raise LocalProtocolError(f"status {status!r} is not in 100..699")
        if "\r" in reason or "\n" in reason:
            raise LocalProtocolError(f"reason phrase {reason!r} contains CR or LF")
        lines = [f"SIP/2.0 {status} {reason}"]
    length = f"Content-Length: {len(body)}"
    written = False
    for key, name, value, raw in message.headers._fields:
        if key == "content-length":
            if not written:
                lines.append(length)
                written = True
        elif raw is not None:
            lines.append(raw)
        else:
            lines.append(f"{name}: {value}")
    if not written:
        lines.append(length)
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body
