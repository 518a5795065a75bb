"""A stand-in for the daemon's HTTP API in unit tests: canned JSON answers, every request recorded.

The CLI's tests against a real `switchd run` are in test_against_daemon.py; this fake lets each
command's rendering and error handling be tested on its own, with exactly the answers the API
contract describes (and the malformed ones it must survive).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass(frozen=True, slots=True)
class Request:
    """One request the fake received; `path` is percent-decoded, `query` one value per key."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int]  # the client's address: one per connection

    def json(self) -> object:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: a JSON `body` with `status`, or `lines` streamed as chunked NDJSON; `raw` as is."""

    body: object = field(default_factory=dict)
    status: int = 200
    lines: Sequence[object] | None = None
    raw: bytes | None = None


Route = Reply | Callable[[Request], Reply]


class FakeApi:
    """Serves `routes[(method, path)]` on 127.0.0.1 (a free port) in a thread; 404 JSON for the rest."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-api",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def on(self, method: str, path: str, reply: Route) -> None:
        self.routes[(method, path)] = reply

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def answer(self, request: Request) -> Reply:
        self.requests.append(request)
        route = self.routes.get((request.method, request.path))
        if route is None:
            return Reply({"error": {"code": "not_found", "detail": f"no route {request.path}"}}, 404)
        return route(request) if callable(route) else route

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def _handler_for(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, unquote(split.path), dict(parse_qsl(split.query)),
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length),
                              (str(self.client_address[0]), int(self.client_address[1])))
            reply = api.answer(request)
            if reply.lines is not None:
                self._stream(reply)
                return
            body = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in _ndjson(reply.lines or ()):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")

        do_GET = do_POST = do_DELETE = _serve  # http.server's naming

    return Handler


def _ndjson(lines: Sequence[object]) -> Iterator[bytes]:
    for line in lines:
        yield json.dumps(line).encode() + b"\n"
