"""A small HTTP/1.1 client on h11 for the API tests: keep-alive, raw bytes, streamed bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import h11
import trio


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)

    @property
    def error(self) -> str:
        """The error code of a JSON error answer."""
        code: str = self.json()["error"]["code"]
        return code


class HttpClient:
    """One connection; `request` sends a request and reads its answer whole."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def _event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(bytes(await self.stream.receive_some(65_536)))

    async def send_request(self, method: str, target: str, *, body: bytes = b"",
                           headers: Sequence[tuple[str, str]] = ()) -> None:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        all_headers = [("Host", "switchd"), *headers]
        if body or method in ("POST", "PUT"):
            all_headers.append(("Content-Length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=all_headers)) or b""
        data += (self.conn.send(h11.Data(data=body)) or b"") if body else b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)

    async def read_head(self) -> tuple[int, dict[str, str]]:
        while True:
            event = await self._event()
            if isinstance(event, h11.Response):
                return event.status_code, {k.decode(): v.decode() for k, v in event.headers}
            assert isinstance(event, h11.InformationalResponse), event

    async def read_answer(self) -> HttpAnswer:
        status, headers = await self.read_head()
        chunks: list[bytes] = []
        while True:
            event = await self._event()
            if isinstance(event, h11.EndOfMessage):
                return HttpAnswer(status, headers, b"".join(chunks))
            assert isinstance(event, h11.Data), f"unexpected {event!r}"
            chunks.append(bytes(event.data))

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body of a streamed answer (after `read_head`), chunk by chunk, until it ends."""
        while True:
            event = await self._event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return

    async def request(self, method: str, target: str, *, body: bytes = b"",
                      headers: Sequence[tuple[str, str]] = ()) -> HttpAnswer:
        await self.send_request(method, target, body=body, headers=headers)
        return await self.read_answer()

    async def get(self, target: str, *, token: str | None = None) -> HttpAnswer:
        return await self.request("GET", target, headers=_auth(token))

    async def post_json(self, target: str, value: object, *, token: str | None = None) -> HttpAnswer:
        return await self.request("POST", target, body=json.dumps(value).encode(),
                                  headers=[("Content-Type", "application/json"), *_auth(token)])


def _auth(token: str | None) -> list[tuple[str, str]]:
    return [] if token is None else [("Authorization", f"Bearer {token}")]


@asynccontextmanager
async def connect(host: str, port: int) -> AsyncIterator[HttpClient]:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        yield HttpClient(stream)


async def read_until_closed(stream: trio.abc.Stream) -> bytes:
    """Everything the server writes until it closes the connection."""
    data = []
    while chunk := await stream.receive_some(65_536):
        data.append(chunk)
    return b"".join(data)
