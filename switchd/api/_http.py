"""One HTTP/1.1 connection of the API: h11 over a trio stream, one request at a time.

Like `switchd.sip.Connection` for SIP, h11 does the protocol without I/O; this module reads and
writes the stream and applies the limits:

* request line and headers at most ``max_head`` bytes (431, h11's ``max_incomplete_event_size``);
  a body at most ``max_body`` (413; ``max_deck`` for POST /rates) — a Content-Length over it is
  refused before a byte of the body is read;
* a request must arrive whole — line, headers and body — within ``request_timeout`` seconds of
  its first byte (408, then close): a client trickling bytes holds a connection no longer;
* between requests a keep-alive connection waits ``idle_timeout`` seconds, then is closed (no
  answer: nothing was asked);
* one write may block ``write_timeout`` seconds, then the client is dropped (it does not read).

Pipelined requests are answered in order, one after the other (h11 pauses on each until its
answer is out). A request answered before its body was read (401, 404, 413 …) closes the
connection, as does every error h11 raises and every streamed answer.

Every answer but /metrics and a stream is JSON, and so is every error: the endpoint's ApiError
as it is; a server of the node that did not answer (an OTPError) as 503; anything else an
endpoint raises is a bug — logged once with its traceback, answered 500 "internal" without it,
and the connection goes on. Nothing a client sends reaches a log line raw: paths are logged as
repr, headers never (the token is in one).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from contextlib import aclosing
from http import HTTPStatus

import h11
import trio

from switchd.otp import OTPError

from ._dispatch import Answer, ApiRequest, Json, Query, Route, Stream, Text, match, split_target
from ._errors import ApiError, MethodNotAllowed, Unauthorized, Unavailable
from ._json import JSON, dumps, error_body
from ._state import ApiState

log = logging.getLogger(__name__)

READ_SIZE = 65_536
SERVER = "switchd"


class _Closed(Exception):
    """The connection is over: the peer closed or stopped reading, or time ran out while idle."""


class _RequestTimeout(Exception):
    """The request did not arrive whole within request_timeout."""


def _head_size(head: h11.Request) -> int:
    """The bytes of a request line and headers as they were sent (within a few of CRLF and spaces)."""
    return len(head.method) + len(head.target) + 12 + sum(len(n) + len(v) + 4 for n, v in head.headers)


class HttpConnection:
    """The API's side of one client connection; `serve()` answers requests until it closes."""

    def __init__(self, stream: trio.abc.Stream, state: ApiState, routes: Sequence[Route]) -> None:
        self.stream = stream
        self.state = state
        self.settings = state.settings
        self.routes = routes
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.settings.max_head)
        self.started: float | None = None  # trio time of the current request's first byte
        self.idle_since = trio.current_time()
        self._client_closed = False  # while streaming: the client closed, wrote, or stopped reading

    async def serve(self) -> None:
        """Answer requests until the client closes, an error closes, or the connection idles out."""
        try:
            while await self._cycle():
                self.conn.start_next_cycle()
                self.idle_since = trio.current_time()
                self.started = self.idle_since if self.conn.trailing_data[0] else None
        except _Closed:
            pass
        finally:
            await trio.aclose_forcefully(self.stream)

    # -- one request ----------------------------------------------------------------------------

    async def _cycle(self) -> bool:
        """Read one request and answer it; False when the connection must close after it."""
        try:
            event = await self._next_event()
        except _RequestTimeout:
            await self._send_error(ApiError(408, "timeout", self._timeout_detail()))
            return False
        except h11.RemoteProtocolError as exc:
            await self._protocol_error(exc)
            return False
        if isinstance(event, h11.ConnectionClosed):
            return False
        if not isinstance(event, h11.Request):  # cannot happen at the start of a cycle; be safe
            return False
        if self.started is None:
            self.started = trio.current_time()
        if _head_size(event) > self.settings.max_head:  # h11 bounds only a head still incomplete
            await self._send(ApiError(431, "request_header_fields_too_large",
                                      f"the request line and headers are over {self.settings.max_head} bytes"))
            return False
        try:
            answer: Answer | ApiError = await self._answer(event)
        except _RequestTimeout:
            answer = ApiError(408, "timeout", self._timeout_detail())
        except h11.RemoteProtocolError as exc:
            await self._protocol_error(exc)
            return False
        self._finish_bodyless(event)
        if isinstance(answer, Stream):
            await self._stream(answer)
            return False
        await self._send(answer)
        return self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE

    async def _answer(self, head: h11.Request) -> Answer | ApiError:
        method = head.method.decode("ascii", errors="replace")
        target = head.target.decode("ascii", errors="replace")
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers}
        path = target.partition("?")[0]
        try:
            segments, query = split_target(target)
            route, params = match(self.routes, method, segments, path)
            if not route.public:
                self._authorize(headers)
            body = await self._read_body(head, route.max_body or self.settings.max_body)
            request = ApiRequest(method, path, params, Query.parse(query), headers, body)
            return await route.endpoint(self.state, request)
        except ApiError as exc:
            return exc
        except OTPError as exc:  # a server of the node is restarting or too busy to answer
            log.warning("API %s %r: %s", method, path[:200], exc, extra={"method": method})
            return Unavailable(f"the node did not answer: {exc}")
        except (_RequestTimeout, h11.RemoteProtocolError, _Closed):
            raise
        except Exception as exc:
            log.error("API %s %r failed: %r", method, path[:200], exc, exc_info=exc,
                      extra={"method": method, "path": path[:200]})
            return ApiError(500, "internal", f"{type(exc).__name__} in the server; the log has the details")

    def _finish_bodyless(self, head: h11.Request) -> None:
        """Take the end of a request without a body that was answered before its body was read
        (a 404 to a GET), so the connection can stay open; one with a body closes instead."""
        headers = dict(head.headers)
        if b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0":
            return
        while self.conn.their_state is h11.SEND_BODY:
            if not isinstance(self.conn.next_event(), h11.Data | h11.EndOfMessage):
                return

    def _authorize(self, headers: dict[str, str]) -> None:
        token = self.settings.token
        if token is None:
            return
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise Unauthorized("this API needs 'Authorization: Bearer <token>' with the token of [api] token")

    async def _read_body(self, head: h11.Request, limit: int) -> bytes:
        length = dict(head.headers).get(b"content-length")
        if length is not None and int(length) > limit:  # h11 checked it is digits
            raise ApiError(413, "payload_too_large", f"the body has {int(length)} bytes; at most {limit} here")
        if self.conn.they_are_waiting_for_100_continue:
            await self._write(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise ApiError(413, "payload_too_large", f"the body is over {limit} bytes, the limit here")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:  # ConnectionClosed in the middle of the body
                raise _Closed

    # -- reading --------------------------------------------------------------------------------

    async def _next_event(self) -> object:
        """h11's next event, reading as needed within the request's (or the idle) deadline."""
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            started = self.started
            deadline = (self.idle_since + self.settings.idle_timeout if started is None
                        else started + self.settings.request_timeout)
            data = None
            with trio.move_on_at(deadline):
                try:
                    data = await self.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    raise _Closed from None
            if data is None:
                if started is None:
                    raise _Closed  # idle keep-alive: close without a word
                raise _RequestTimeout
            if data and started is None:
                self.started = trio.current_time()
            self.conn.receive_data(bytes(data))

    def _timeout_detail(self) -> str:
        return f"the request did not arrive whole within {self.settings.request_timeout:g}s"

    # -- writing --------------------------------------------------------------------------------

    async def _write(self, *events: h11.Event) -> None:
        data = b"".join(self.conn.send(event) or b"" for event in events)
        with trio.move_on_after(self.settings.write_timeout) as scope:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise _Closed from None
        if scope.cancelled_caught:
            log.info("API client does not read; dropped after %gs", self.settings.write_timeout)
            raise _Closed

    async def _send(self, answer: Json | Text | ApiError) -> None:
        headers: list[tuple[str, str]] = []
        if isinstance(answer, ApiError):
            status, body, content_type = answer.status, error_body(answer), JSON
            if isinstance(answer, MethodNotAllowed):
                headers.append(("Allow", ", ".join(answer.allow)))
            if isinstance(answer, Unauthorized):
                headers.append(("WWW-Authenticate", 'Bearer realm="switchd"'))
        elif isinstance(answer, Json):
            status, body, content_type = answer.status, dumps(answer.value), JSON
        else:
            status, body, content_type = answer.status, answer.body, answer.content_type
        if self.conn.their_state is not h11.DONE:  # answered before the request was read whole
            headers.append(("Connection", "close"))
        await self._write(self._head(status, content_type, [("Content-Length", str(len(body))), *headers]),
                          h11.Data(data=body), h11.EndOfMessage())

    def _head(self, status: int, content_type: str, headers: list[tuple[str, str]]) -> h11.Response:
        return h11.Response(status_code=status, reason=HTTPStatus(status).phrase, headers=[
            ("Content-Type", content_type), ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
            ("Server", SERVER), *headers])

    async def _send_error(self, error: ApiError) -> None:
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self._send(error)

    async def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        status = exc.error_status_hint
        code = {431: "request_header_fields_too_large", 413: "payload_too_large"}.get(status, "bad_request")
        await self._send_error(ApiError(status, code, f"not a request this server can read: {exc}"))

    async def _stream(self, answer: Stream) -> None:
        """Send `answer`'s chunks as they come, until they end or the client closes; then close.

        The chunks are written by a task of their own; the connection's own task runs the
        answer's `watch` (it may monitor and receive: only the process's task can), then waits.
        """
        await self._write(self._head(200, answer.content_type, [("Connection", "close")]))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._until_closed, nursery.cancel_scope)
            nursery.start_soon(self._pump, answer, nursery.cancel_scope)
            if answer.watch is not None:
                await answer.watch()
            await trio.sleep_forever()  # until the chunks end or the client goes
        if self._client_closed:
            raise _Closed
        await self._write(h11.EndOfMessage())

    async def _pump(self, answer: Stream, scope: trio.CancelScope) -> None:
        try:
            async with aclosing(answer.chunks) as chunks:
                async for chunk in chunks:
                    await self._write(h11.Data(data=chunk))
        except _Closed:
            self._client_closed = True
        finally:
            scope.cancel()

    async def _until_closed(self, scope: trio.CancelScope) -> None:
        """While streaming: the client closing (or sending anything) ends the stream."""
        try:
            await self.stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self._client_closed = True
        scope.cancel()
