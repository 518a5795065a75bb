"""The CLI's client of the daemon's HTTP API (stdlib http.client: the CLI is synchronous).

One `ApiClient` holds one HTTP/1.1 keep-alive connection, so `switchd top` refreshing every
second reuses it. Every answer is JSON (an NDJSON stream for `stream`); what the CLI is given is
checked here, at its edge: a body that is not a JSON object is an `ApiRefusal`, never a KeyError
later. Errors are CliErrors, so they reach the user as one red line:

* DaemonUnreachable   nothing answers at the address (exit 1; says how to start the daemon)
* ApiRefusal          the API answered 4xx/5xx: `.status`, `.code`, `.detail` from its JSON error;
                      a refusal of what the user asked (400, 401, 403, 413, 415, 422) exits 2,
                      anything else (404, 5xx) exits 1

Where the API is: `--api URL` (`http://127.0.0.1:8080` or `127.0.0.1:8080`), else `[api] listen`
of the configuration (a wildcard address means this machine: 127.0.0.1 or ::1). The token:
`$SWITCHD_API_TOKEN`, else `[api] token` of the configuration — never a command-line option,
which any user could read in the process list.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any, Self
from urllib.parse import quote, urlencode

from switchd.config import Address, Config

from ._common import EXIT_FAILURE, EXIT_USAGE, CliError

JsonObject = dict[str, Any]
TOKEN_ENV = "SWITCHD_API_TOKEN"
DEFAULT_TIMEOUT = 5.0
_USAGE_STATUSES = frozenset({400, 401, 403, 413, 415, 422})
_URL = re.compile(r"(?:http://)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>\d{1,5})/?")
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class DaemonUnreachable(CliError):
    """Nothing answers at the API's address: the daemon is not running, or listens elsewhere."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"switchd does not answer at {url} ({reason}): is it running? "
                         "Start it with `switchd run` (or point --api at it)", EXIT_FAILURE)
        self.url = url


class ApiRefusal(CliError):
    """The API answered with an error: its HTTP status, its error code and its detail."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail or f"HTTP {status} {code}",
                         EXIT_USAGE if status in _USAGE_STATUSES else EXIT_FAILURE)
        self.status = status
        self.api_code = code
        self.detail = detail


def api_address(text: str) -> Address:
    """`http://HOST:PORT` or `HOST:PORT` (`[::1]:8080` for IPv6); CliError (exit 2) otherwise."""
    found = _URL.fullmatch(text.strip())
    if found is None or not 1 <= int(found["port"]) <= 65_535:
        raise CliError(f"--api {text!r} is not http://HOST:PORT (e.g. http://127.0.0.1:8080)", EXIT_USAGE)
    return Address(found["v6"] or found["host"], int(found["port"]))


def reachable(listen: Address) -> Address:
    """The address to reach an API listening on `listen` from this machine (a wildcard is this one)."""
    return Address(_WILDCARDS.get(listen.host, listen.host), listen.port)


def token_for(config: Config | None) -> str | None:
    """The API token: $SWITCHD_API_TOKEN, else the configuration's `[api] token`, else None."""
    from_env = os.environ.get(TOKEN_ENV)
    if from_env:
        return from_env
    return config.api.token if config is not None else None


class ApiClient:
    """Requests to one daemon's API over one keep-alive connection; use as a context manager."""

    def __init__(self, address: Address, *, token: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = address
        self.url = f"http://{address}"
        self._token = token
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def get(self, path: str, **query: str | int | None) -> JsonObject:
        """GET `path` (with `query`, None values left out); the JSON object it answered."""
        return self._json("GET", _target(path, query))

    def post(self, path: str, body: Mapping[str, object] | None = None, *, data: bytes | None = None,
             content_type: str = "application/json", **query: str | int | None) -> JsonObject:
        """POST a JSON `body` (or raw `data` of `content_type`) to `path`; the JSON object answered."""
        payload = data if data is not None else json.dumps(body or {}).encode()
        return self._json("POST", _target(path, query), payload, content_type)

    def delete(self, path: str) -> JsonObject:
        """DELETE `path`; the JSON object answered."""
        return self._json("DELETE", _target(path, {}))

    def stream(self, path: str, **query: str | int | None) -> Iterator[JsonObject]:
        """GET `path` as an NDJSON stream: sends the request now, then yields each line's object as it
        arrives, until the server ends the stream.

        On a connection of its own, so the keep-alive one stays free for other requests meanwhile.
        Waits for each line as long as it takes (a followed call may be quiet for minutes); ^C stops.
        """
        conn = self._fresh_connection(timeout=None)
        try:
            response = self._send(conn, "GET", _target(path, query), None, None)
            if response.status >= 400:
                raise _refusal(response.status, response.read())
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise DaemonUnreachable(self.url, _reason(exc)) from exc
        except ApiRefusal:
            conn.close()
            raise
        return self._lines(conn, response, path)

    def _lines(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
               path: str) -> Iterator[JsonObject]:
        try:
            while line := response.readline():
                if line.strip():
                    yield _object(line, f"a line of {path}")
        except (OSError, http.client.HTTPException) as exc:
            raise DaemonUnreachable(self.url, _reason(exc)) from exc
        finally:
            conn.close()

    # --- one request ---------------------------------------------------------------------------------

    def _json(self, method: str, target: str, payload: bytes | None = None,
              content_type: str | None = None) -> JsonObject:
        reused = self._conn is not None
        try:
            response = self._send(self._connection(), method, target, payload, content_type)
            body = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            self.close()
            if not (reused and method == "GET"):  # only a GET is safe to send twice
                raise DaemonUnreachable(self.url, _reason(exc)) from exc
            return self._json(method, target, payload, content_type)  # the server closed an idle connection
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise DaemonUnreachable(self.url, _reason(exc)) from exc
        if response.will_close:
            self.close()
        if response.status >= 400:
            raise _refusal(response.status, body)
        return _object(body, f"{method} {target.partition('?')[0]}")

    def _send(self, conn: http.client.HTTPConnection, method: str, target: str, payload: bytes | None,
              content_type: str | None) -> http.client.HTTPResponse:
        headers = {"Accept": "application/json", "User-Agent": "switchd-cli"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if payload is not None and content_type is not None:
            headers["Content-Type"] = content_type
        conn.request(method, target, body=payload, headers=headers)
        return conn.getresponse()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = self._fresh_connection(timeout=self._timeout)
        return self._conn

    def _fresh_connection(self, *, timeout: float | None) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.address.host, self.address.port, timeout=timeout)


def call_path(prefix: str, call_id: str) -> str:
    """`prefix`/`call_id` with the Call-ID percent-encoded (it may hold '@', '/', '%' …)."""
    return f"{prefix}/{quote(call_id, safe='')}"


def _target(path: str, query: Mapping[str, str | int | None]) -> str:
    given = {key: str(value) for key, value in query.items() if value is not None}
    return f"{path}?{urlencode(given)}" if given else path


def _object(raw: bytes, what: str) -> JsonObject:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        raise ApiRefusal(502, "bad_gateway", f"the API's answer to {what} is not a JSON object")
    return value


def _refusal(status: int, raw: bytes) -> ApiRefusal:
    """The ApiRefusal for an error answer: its JSON error, or the bare status when it has none."""
    try:
        error = json.loads(raw).get("error")
        code, detail = str(error.get("code", "")), str(error.get("detail", ""))
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        code, detail = "", ""
    reason = http.client.responses.get(status, "error")
    return ApiRefusal(status, code or reason.lower().replace(" ", "_"), detail or f"HTTP {status} {reason}")


def _reason(exc: BaseException) -> str:
    match exc:
        case ConnectionRefusedError():
            return "connection refused"
        case socket.timeout() | TimeoutError():
            return "no answer in time"
        case http.client.RemoteDisconnected():
            return "it closed the connection"
        case OSError() if exc.strerror:
            return exc.strerror.lower()
    return str(exc) or type(exc).__name__
