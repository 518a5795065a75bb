"""The CLI's API client: JSON in and out, the token, keep-alive, and every failure as one CliError."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from switchd.cli._client import (
    ApiClient,
    ApiRefusal,
    DaemonUnreachable,
    api_address,
    call_path,
    reachable,
    token_for,
)
from switchd.config import Address, loads

from ._fake_api import FakeApi, Reply


def _client(api: FakeApi, token: str | None = None) -> ApiClient:
    return ApiClient(api_address(api.url), token=token)


def test_get_answers_the_json_object_and_leaves_unset_query_values_out(api: FakeApi) -> None:
    api.on("GET", "/calls", Reply({"calls": [{"call_id": "a"}]}))
    with _client(api) as client:
        assert client.get("/calls", limit=5, cursor=None) == {"calls": [{"call_id": "a"}]}
    (request,) = api.requests
    assert request.query == {"limit": "5"}
    assert request.headers["accept"] == "application/json"


def test_the_token_goes_in_a_bearer_header_and_only_when_there_is_one(api: FakeApi) -> None:
    api.on("GET", "/status", Reply({}))
    with _client(api, token="t0ken") as client:
        client.get("/status")
    with _client(api) as client:
        client.get("/status")
    assert api.requests[0].headers["authorization"] == "Bearer t0ken"
    assert "authorization" not in api.requests[1].headers


def test_the_token_comes_from_the_environment_before_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    config = loads('[api]\ntoken = "from-config-0123456789"\n')
    assert token_for(config) == "from-config-0123456789"
    assert token_for(None) is None
    monkeypatch.setenv("SWITCHD_API_TOKEN", "from-env")
    assert token_for(config) == "from-env"


def test_requests_share_one_keep_alive_connection(api: FakeApi) -> None:
    api.on("GET", "/status", Reply({}))
    with _client(api) as client:
        for _ in range(3):
            client.get("/status")
    assert len({r.peer for r in api.requests}) == 1


def test_post_sends_json_or_raw_data_with_its_content_type(api: FakeApi) -> None:
    api.on("POST", "/policy", Reply({"policy": "least_cost"}))
    api.on("POST", "/rates", Reply({"tariffs": 2}))
    with _client(api) as client:
        assert client.post("/policy", {"name": "least_cost"}) == {"policy": "least_cost"}
        client.post("/rates", data=b"prefix,price\n", content_type="text/csv", plan="gold")
    policy, rates = api.requests
    assert policy.json() == {"name": "least_cost"} and policy.headers["content-type"] == "application/json"
    assert rates.body == b"prefix,price\n" and rates.headers["content-type"] == "text/csv"
    assert rates.query == {"plan": "gold"}


def test_an_error_answer_is_a_refusal_with_the_apis_detail_and_the_exit_status_it_deserves(api: FakeApi) -> None:
    api.on("POST", "/policy", Reply({"error": {"code": "bad_request", "detail": "unknown policy 'x'"}}, 422))
    api.on("GET", "/calls/nope", Reply({"error": {"code": "not_found", "detail": "no call 'nope'"}}, 404))
    with _client(api) as client:
        with pytest.raises(ApiRefusal) as refused:
            client.post("/policy", {"name": "x"})
        assert (refused.value.status, refused.value.api_code, str(refused.value)) == (
            422, "bad_request", "unknown policy 'x'")
        assert refused.value.code == 2  # the user asked for something the daemon refuses
        with pytest.raises(ApiRefusal) as missing:
            client.get("/calls/nope")
        assert missing.value.code == 1


def test_an_error_without_a_json_body_still_names_its_status(api: FakeApi) -> None:
    api.on("GET", "/tree", Reply(raw=b"<html>oops</html>", status=500))
    with _client(api) as client, pytest.raises(ApiRefusal) as refused:
        client.get("/tree")
    assert str(refused.value) == "HTTP 500 Internal Server Error"
    assert refused.value.code == 1


@pytest.mark.parametrize("raw", [b"[1, 2]", b"not json", b"\xff\xfe", b""])
def test_an_answer_that_is_not_a_json_object_is_refused_not_crashed_on(api: FakeApi, raw: bytes) -> None:
    api.on("GET", "/status", Reply(raw=raw))
    with _client(api) as client, pytest.raises(ApiRefusal, match="is not a JSON object"):
        client.get("/status")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_says_the_daemon_does_not_answer_and_how_to_start_it() -> None:
    port = _closed_port()
    with ApiClient(Address("127.0.0.1", port)) as client, pytest.raises(DaemonUnreachable) as unreachable:
        client.get("/status")
    message = str(unreachable.value)
    assert f"http://127.0.0.1:{port}" in message and "connection refused" in message
    assert "switchd run" in message
    assert unreachable.value.code == 1


def test_a_stream_yields_each_ndjson_line_as_an_object(api: FakeApi) -> None:
    api.on("GET", "/trace/*", Reply(lines=[{"n": 1}, {"n": 2}, {"n": 3}]))
    with _client(api) as client:
        assert list(client.stream("/trace/*", follow=1)) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert api.requests[0].query == {"follow": "1"}


def test_a_refused_stream_is_a_refusal(api: FakeApi) -> None:
    with _client(api) as client, pytest.raises(ApiRefusal, match="no route"):
        list(client.stream("/trace/x", follow=1))


def test_a_call_id_is_percent_encoded_in_a_path(api: FakeApi) -> None:
    api.on("GET", "/calls/a/b@host%1", Reply({"call_id": "a/b@host%1"}))
    with _client(api) as client:
        assert client.get(call_path("/calls", "a/b@host%1")) == {"call_id": "a/b@host%1"}
    assert call_path("/calls", "a/b@h") == "/calls/a%2Fb%40h"


@pytest.mark.parametrize(("text", "address"), [
    ("http://127.0.0.1:8080", Address("127.0.0.1", 8080)),
    ("127.0.0.1:9", Address("127.0.0.1", 9)),
    ("http://[::1]:8080/", Address("::1", 8080)),
    ("localhost:80", Address("localhost", 80)),
])
def test_an_api_address_is_host_and_port_with_or_without_the_scheme(text: str, address: Address) -> None:
    assert api_address(text) == address


@pytest.mark.parametrize("text", ["https://h:1", "h", "h:0", "h:70000", "http://h:1/api", "ftp://h:1"])
def test_anything_else_is_a_bad_argument(text: str) -> None:
    with pytest.raises(Exception, match="is not http://HOST:PORT") as refused:
        api_address(text)
    assert getattr(refused.value, "code", None) == 2


def test_a_wildcard_listen_address_is_reached_on_this_machine() -> None:
    assert ApiClient(reachable(Address("0.0.0.0", 8080))).url == "http://127.0.0.1:8080"
    assert ApiClient(reachable(Address("::", 8080))).url == "http://[::1]:8080"
    assert reachable(Address("10.0.0.5", 81)) == Address("10.0.0.5", 81)


@pytest.fixture
def closes_after_each_answer() -> Iterator[tuple[int, list[bytes]]]:
    """A server that answers one request per connection with keep-alive, then drops the connection."""
    seen: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(65536)
                seen.append(data.split(b"\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1]), seen
    listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread (close alone does not)
    listener.close()
    thread.join(5.0)


def test_a_get_on_a_connection_the_server_closed_is_sent_again_on_a_new_one(
    closes_after_each_answer: tuple[int, list[bytes]]
) -> None:
    port, seen = closes_after_each_answer
    with ApiClient(Address("127.0.0.1", port)) as client:
        assert client.get("/status") == {}
        assert client.get("/status") == {}
    assert seen.count(b"GET /status HTTP/1.1") == 2


def test_a_post_is_never_sent_twice(closes_after_each_answer: tuple[int, list[bytes]]) -> None:
    port, seen = closes_after_each_answer
    with ApiClient(Address("127.0.0.1", port)) as client:
        client.get("/status")
        with pytest.raises(DaemonUnreachable):
            client.post("/chaos", {"kill": "router"})
    assert b"POST /chaos HTTP/1.1" not in seen
