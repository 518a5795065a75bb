"""Requests to endpoints: the parsed request, the three kinds of answer, and the path table.

A path is matched segment by segment after splitting the raw target on "/", each segment then
percent-decoded as UTF-8 — so a Call-ID with a "/" or "@" in it travels as ``%2F`` / ``%40`` in
one segment. A path that matches no route is 404; a route that exists for other methods is 405
with ``Allow``. Query parameters are checked by the endpoint through `Query`, which refuses a
parameter the endpoint does not take, a repeated one, and a value of the wrong kind, naming it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, TypeAlias, TypeVar
from urllib.parse import parse_qsl, unquote

from ._errors import BadRequest, MethodNotAllowed, NotFound
from ._json import parse_time

if TYPE_CHECKING:
    from datetime import datetime

    from ._state import ApiState

E = TypeVar("E", bound=Enum)


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One request as an endpoint sees it: `params` are the decoded path parameters, in order."""

    method: str
    path: str
    params: tuple[str, ...]
    query: Query
    headers: Mapping[str, str]  # lower-case names; the last value of a repeated header
    body: bytes = b""

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass(frozen=True, slots=True)
class Json:
    """Answer `value` as JSON with `status`."""

    value: object
    status: int = 200


@dataclass(frozen=True, slots=True)
class Text:
    """Answer `body` as is, with `content_type`."""

    body: bytes
    content_type: str
    status: int = 200


@dataclass(frozen=True, slots=True)
class Stream:
    """Answer 200 with the chunks `chunks` yields, as they come (chunked), then close the connection.

    The server stops it (closing the iterator) when the client closes its end first. `watch`, if
    given, runs alongside in the connection's process (it may monitor, receive) until the stream
    ends; it is how a stream learns that what it follows has ended.
    """

    chunks: AsyncGenerator[bytes, None]
    content_type: str = "application/x-ndjson"
    watch: Callable[[], Awaitable[None]] | None = None


Answer: TypeAlias = Json | Text | Stream
Endpoint: TypeAlias = Callable[["ApiState", ApiRequest], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Query:
    """The query parameters of a request; an endpoint takes them with the typed getters and `done()`."""

    values: Mapping[str, str]
    taken: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str) -> Query:
        """The parameters in a query string; BadRequest for bad encoding or a repeated name."""
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict",
                              max_num_fields=64)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"the query string is not valid: {exc}") from None
        values: dict[str, str] = {}
        for name, value in pairs:
            if name in values:
                raise BadRequest(f"query parameter {name!r} is given twice")
            values[name] = value
        return cls(values)

    def text(self, name: str, default: str | None = None) -> str | None:
        self.taken.add(name)
        value = self.values.get(name)
        if value is not None and not value:
            raise BadRequest(f"query parameter {name!r} is empty")
        return default if value is None else value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        text = self.text(name)
        if text is None:
            return default
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise BadRequest(f"{name}={text!r} is not a whole number from {low} to {high}")
        return int(text)

    def time(self, name: str) -> datetime | None:
        text = self.text(name)
        return None if text is None else parse_time(name, text)

    def choice(self, name: str, kind: type[E], default: E | None = None) -> E | None:
        text = self.text(name)
        if text is None:
            return default
        for member in kind:
            if text in (member.value, member.name, str(member.value).lower()):
                return member
        raise BadRequest(f"{name}={text!r} is not one of {', '.join(str(m.value) for m in kind)}")

    def flag(self, name: str) -> bool:
        text = self.text(name)
        if text is None:
            return False
        if text not in ("0", "1", "true", "false"):
            raise BadRequest(f"{name}={text!r} is not 1, 0, true or false")
        return text in ("1", "true")

    def done(self) -> None:
        """BadRequest when a parameter was given that the endpoint did not take."""
        unknown = sorted(set(self.values) - self.taken)
        if unknown:
            raise BadRequest(f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                             f"this path takes {', '.join(sorted(self.taken)) or 'none'}")


@dataclass(frozen=True, slots=True)
class Route:
    """`method` on `pattern` (segments; "{}" takes one parameter) is answered by `endpoint`."""

    method: str
    pattern: tuple[str, ...]
    endpoint: Endpoint
    public: bool = False  # answered without the token (GET /health only)
    max_body: int | None = None  # bytes; None: the default limit


def route(method: str, path: str, endpoint: Endpoint, *, public: bool = False,
          max_body: int | None = None) -> Route:
    """A Route for `path` written "/calls/{call_id}" (any name in braces is one parameter)."""
    pattern = tuple("{}" if part.startswith("{") else part for part in path.strip("/").split("/"))
    return Route(method, pattern, endpoint, public, max_body)


def split_target(target: str) -> tuple[tuple[str, ...], str]:
    """The decoded path segments and the raw query string of a request target."""
    path, _, query = target.partition("?")
    if not path.startswith("/"):
        raise BadRequest(f"the request target {target[:80]!r} is not an absolute path")
    segments = []
    for raw in path.strip("/").split("/"):
        try:
            segments.append(unquote(raw, errors="strict"))
        except UnicodeDecodeError:
            raise BadRequest(f"the path segment {raw[:80]!r} is not UTF-8 once decoded") from None
    return tuple(segments), query


def match(routes: Sequence[Route], method: str, segments: tuple[str, ...], path: str) -> tuple[Route, tuple[str, ...]]:
    """The route for `method` on `segments` and its parameters; NotFound or MethodNotAllowed."""
    allowed: list[str] = []
    for candidate in routes:
        if len(candidate.pattern) != len(segments):
            continue
        params = []
        for want, got in zip(candidate.pattern, segments, strict=True):
            if want == "{}":
                if not got:
                    break
                params.append(got)
            elif want != got:
                break
        else:
            if candidate.method == method:
                return candidate, tuple(params)
            allowed.append(candidate.method)
    if allowed:
        raise MethodNotAllowed(method, path, tuple(sorted(set(allowed))))
    raise NotFound(f"no such path: {path[:200]}")

