"""Errors raised by switchd.sip.

* SipError                   base of everything this package raises on purpose
  * ProtocolError            the SIP rules were broken; .status_hint says what to answer (400, 505 ...)
    * LocalProtocolError     by us: we tried to build or send something illegal (a bug in the caller)
    * RemoteProtocolError    by the peer: answer .status_hint with .reason, or close if .framing_lost

h11's ``ProtocolError`` is the model. Whatever bytes come in, nothing but RemoteProtocolError
escapes the parser or the `Connection`; anything else is a bug in this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._message import Request, Response

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError", "SipError"]

# Reason phrases for the status hints this package produces; kept here so the errors module
# needs nothing else (the full table lives in _codes.Status).
_PHRASES = {
    400: "Bad Request",
    413: "Request Entity Too Large",
    416: "Unsupported URI Scheme",
    500: "Server Internal Error",
    505: "Version Not Supported",
    513: "Message Too Large",
}


class SipError(Exception):
    """Base class of every error switchd.sip raises on purpose."""


class ProtocolError(SipError):
    """The SIP rules were broken.

    `status_hint` is the status a server should answer with (400, 505, 513 ...) and `reason`
    a short reason phrase fit for that response's status line; ``str(exc)`` is the long form
    that names the offending value and where it was found.
    """

    def __init__(self, message: str, *, status_hint: int = 400, reason: str | None = None) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.reason = reason if reason is not None else _PHRASES.get(status_hint, "Bad Request")


class LocalProtocolError(ProtocolError):
    """Our side tried to build or send something that is not valid SIP (a bug in the caller)."""

    def __init__(self, message: str, *, status_hint: int = 500, reason: str | None = None) -> None:
        super().__init__(message, status_hint=status_hint, reason=reason)


class RemoteProtocolError(ProtocolError):
    """The peer sent something that is not valid SIP.

    `framing_lost` is True when the byte stream can no longer be split into messages (bad or
    missing Content-Length, a garbage start line, a limit hit before the end of a message): the
    caller may answer `status_hint` if `partial` lets it, and must then close the connection.
    When False, the bad message was consumed whole and the connection goes on.

    `partial` is the message as far as it could be read (its start line and raw headers; its
    typed accessors may raise), so a server can still build a 400 with the right Via, From, To,
    Call-ID and CSeq; None when not even the start line could be read.

    `limit` names the configured limit that was hit (``"max_message_size"``, ``"max_headers"``,
    ``"max_line_length"``, ``"max_vias"``) or is None.
    """

    def __init__(
        self,
        message: str,
        *,
        status_hint: int = 400,
        reason: str | None = None,
        framing_lost: bool = False,
        partial: Request | Response | None = None,
        limit: str | None = None,
    ) -> None:
        super().__init__(message, status_hint=status_hint, reason=reason)
        self.framing_lost = framing_lost
        self.partial = partial
        self.limit = limit
