"""Connection: Content-Length framing of a SIP byte stream (TCP), in the manner of h11.

Feed it bytes with `receive_data` (``b""`` at EOF) and call `next_event` until it returns
`NEED_DATA`; every message comes out exactly once and in order, however the stream was split.

Between messages (RFC 5626 §3.5.1) a double CRLF is a keep-alive ping: `next_event` returns a
`Ping` whose `.pong` (a single CRLF) the caller writes back; a lone CRLF (a pong, or an old-style
keep-alive) is skipped silently.

Errors are RemoteProtocolError. With ``framing_lost=False`` the bad message has been consumed
and the next call goes on with the next message; with ``framing_lost=True`` the stream cannot be
split any more: the same error is raised by every later call and incoming data is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError, RemoteProtocolError
from ._message import Request, Response
from ._parser import DEFAULT_LIMITS, Limits, Parsed, parse_head, validate
from ._serializer import serialize

__all__ = ["NEED_DATA", "Connection", "ConnectionClosed", "Event", "NeedData", "Ping"]


@dataclass(frozen=True, slots=True)
class NeedData:
    """No complete event yet: read more from the transport and call `receive_data`."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the stream cleanly, between messages."""


@dataclass(frozen=True, slots=True)
class Ping:
    """The peer sent a double-CRLF keep-alive ping (RFC 5626 §3.5.1); write `pong` back."""

    pong: bytes = b"\r\n"


NEED_DATA = NeedData()
_DEFAULTS = (DEFAULT_LIMITS.max_message_size, DEFAULT_LIMITS.max_headers, DEFAULT_LIMITS.max_line_length,
             DEFAULT_LIMITS.max_vias)
Event = Request | Response | Ping | NeedData | ConnectionClosed


class Connection:
    """Frames SIP messages on one stream connection.

    Options (keyword-only; their defaults are `DEFAULT_LIMITS`'s, see `Limits`):

    - `max_message_size` (65_535): bytes of head plus body; more is a 513 and loses framing.
    - `max_headers` (100): header fields in one message; more is a 400 for that message.
    - `max_line_length` (8_192): characters in one header line; more is a 400 (or loses framing
      when the line never ends).
    - `max_vias` (70): Via values in one message; more is a 400 for that message.

    While `keep_bytes` is True (False by default; it may be switched at any time), each message
    `next_event` returns leaves the bytes it was read from, head and body, in `last_bytes` (for a
    trace: no re-serialisation); with it False, `last_bytes` is not updated.
    """

    __slots__ = ("_buffer", "_eof", "_error", "_head_size", "_line_start", "_pending", "_scanned", "keep_bytes",
                 "last_bytes", "limits")

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_LIMITS.max_message_size,
        max_headers: int = DEFAULT_LIMITS.max_headers,
        max_line_length: int = DEFAULT_LIMITS.max_line_length,
        max_vias: int = DEFAULT_LIMITS.max_vias,
    ) -> None:
        limits = (max_message_size, max_headers, max_line_length, max_vias)
        # A frozen dataclass costs ~0.5 µs to build; most connections share the default one.
        self.limits = DEFAULT_LIMITS if limits == _DEFAULTS else Limits(*limits)
        self._buffer = bytearray()
        self._scanned = 0  # bytes already searched for the end of the head
        self._line_start = 0  # where the unterminated head's last line starts
        self._pending: Parsed | None = None
        self._head_size = 0
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self.keep_bytes = False
        self.last_bytes = b""

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the stream; ``b""`` means the peer closed it (EOF).

        Raises LocalProtocolError when data follows EOF.
        """
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() called with data after EOF")
            return
        if not data:
            self._eof = True
        elif self._error is None:
            self._buffer += data

    def send(self, message: Request | Response) -> bytes:
        """The bytes to write for `message` (see `serialize`)."""
        return serialize(message)

    def next_event(self) -> Event:
        """The next event from the bytes received so far; see the module docstring.

        Raises RemoteProtocolError for bad input.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            if exc.framing_lost:
                self._error = exc
                self._buffer.clear()
                self._pending = None
            raise

    def _next_event(self) -> Event:
        buffer = self._buffer
        pending = self._pending
        if pending is None:
            while buffer.startswith(b"\r\n"):
                if buffer.startswith(b"\r\n", 2):
                    del buffer[:4]
                    return Ping()
                if not self._eof and (len(buffer) == 2 or (len(buffer) == 3 and buffer[2] == 13)):
                    return NEED_DATA  # could still become a ping
                del buffer[:2]
            if not buffer or (self._eof and not buffer.strip(b"\r\n")):
                buffer.clear()
                return ConnectionClosed() if self._eof else NEED_DATA
            scanned = self._scanned  # resume the search where the last one stopped
            end = buffer.find(b"\r\n\r\n", scanned - 3 if scanned > 3 else 0)
            if end < 0:
                self._check_unterminated_head()
                return NEED_DATA
            self._scanned = self._line_start = 0
            if end + 4 > self.limits.max_message_size:
                raise RemoteProtocolError(
                    f"a head of {end + 4} bytes, over max_message_size={self.limits.max_message_size}",
                    status_hint=513, framing_lost=True, limit="max_message_size",
                )
            self._head_size = end + 4
            pending = self._pending = self._parse(end)
        head_size = self._head_size
        total = head_size + (pending.content_length or 0)
        if len(buffer) < total:
            if self._eof:
                raise RemoteProtocolError(
                    f"connection closed {total - len(buffer)} bytes before the end of the body",
                    framing_lost=True,
                    partial=pending.message,
                )
            return NEED_DATA
        message = pending.message
        if self.keep_bytes:
            raw = self.last_bytes = bytes(buffer[:total])
            message.body = raw[head_size:]
        else:
            message.body = bytes(buffer[head_size:total])
        del buffer[:total]
        self._pending = None
        if pending.error is not None:
            raise pending.error
        validate(message, self.limits)
        return message

    def _parse(self, end: int) -> Parsed:
        """Parse the head ending at `end`; raise the errors that lose framing."""
        limits = self.limits
        parsed = parse_head(self._buffer[:end], limits)
        message = parsed.message
        if parsed.content_length_error is not None:
            raise RemoteProtocolError(parsed.content_length_error, reason="Bad Content-Length",
                                      framing_lost=True, partial=message)
        if parsed.content_length is None:
            # RFC 3261 §18.3: on a stream transport Content-Length MUST be present.
            raise RemoteProtocolError("missing Content-Length (mandatory on TCP)",
                                      reason="Missing Content-Length", framing_lost=True,
                                      partial=message)
        size = end + 4 + parsed.content_length
        if size > limits.max_message_size:
            raise RemoteProtocolError(
                f"message of {size} bytes, over max_message_size={limits.max_message_size}",
                status_hint=513, framing_lost=True, partial=message, limit="max_message_size",
            )
        return parsed

    def _check_unterminated_head(self) -> None:
        """Limits and EOF for a head whose end has not arrived yet."""
        buffer = self._buffer
        limits = self.limits
        if len(buffer) > limits.max_message_size:
            raise RemoteProtocolError(
                f"no end of headers within max_message_size={limits.max_message_size} bytes",
                status_hint=513, framing_lost=True, limit="max_message_size", partial=self._lines_so_far(),
            )
        # Only the bytes that arrived since the last call are searched: no quadratic rescans.
        newline = buffer.rfind(b"\n", self._scanned)
        if newline >= 0:
            self._line_start = newline + 1
        self._scanned = len(buffer)
        if len(buffer) - self._line_start > limits.max_line_length:
            raise RemoteProtocolError(
                f"a line of over max_line_length={limits.max_line_length} characters",
                reason="Line Too Long", framing_lost=True, limit="max_line_length", partial=self._lines_so_far(),
            )
        if self._eof:
            raise RemoteProtocolError("connection closed in the middle of a message head",
                                      framing_lost=True)

    def _lines_so_far(self) -> Request | Response | None:
        """The unterminated head's start line and complete header lines, to answer from; None without them.

        What the lines hold is not checked: the caller copies only what is clean (the answer to a
        head that never ended is built from what came before the line that did not).
        """
        complete = self._buffer[:self._line_start].rstrip(b"\r\n")
        if not self._line_start or not complete:
            return None
        try:
            return parse_head(complete, self.limits).message
        except RemoteProtocolError:  # not even a start line
            return None
