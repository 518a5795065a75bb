"""The API's HTTP layer over a memory stream: keep-alive, pipelining, limits, auth, JSON errors, fuzz."""

from __future__ import annotations

import json
import logging
import re

import h11
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from switchd.api import ApiSettings, ApiState, HttpListener, endpoints
from switchd.api._dispatch import Answer, ApiRequest, route
from switchd.otp import NoProcess

from ._client import read_until_closed
from ._fakes import make_state, served

TOKEN = "s3cret-token-0123456789"


async def test_two_requests_on_one_keep_alive_connection_are_both_answered() -> None:
    async with served() as (client, _):
        first = await client.get("/health")
        second = await client.get("/health")
    assert first.status == second.status == 200
    assert first.json() == {"status": "ok", "node": "test-node", "version": "9.9.9", "uptime": 0.0}
    assert first.headers["content-type"] == "application/json"
    assert "connection" not in first.headers


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with served() as (_, stream):
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                              b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                              b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await read_until_closed(stream)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", raw) == [b"200", b"404", b"200"]


async def test_an_unknown_path_is_a_json_404_and_a_known_path_with_the_wrong_method_a_405() -> None:
    async with served() as (client, _):
        missing = await client.get("/nope")
        wrong = await client.request("DELETE", "/health")
        assert missing.status == 404 and missing.error == "not_found"
        assert wrong.status == 405 and wrong.error == "method_not_allowed" and wrong.headers["allow"] == "GET"


async def test_an_unknown_or_repeated_query_parameter_is_a_400_naming_it() -> None:
    async with served() as (client, _):
        unknown = await client.get("/health?verbose=1")
        repeated = await client.get("/calls?limit=1&limit=2")
    assert unknown.status == 400 and "'verbose'" in unknown.json()["error"]["detail"]
    assert repeated.status == 400 and "twice" in repeated.json()["error"]["detail"]


async def test_headers_over_16_kib_get_431_and_the_connection_closes() -> None:
    async with served() as (_, stream):
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n")
        raw = await read_until_closed(stream)
    assert raw.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_header_fields_too_large"


async def test_a_body_declared_over_the_limit_gets_413_before_it_is_sent() -> None:
    async with served() as (_, stream):
        await stream.send_all(b"POST /policy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 65537\r\n\r\n")
        raw = await read_until_closed(stream)  # answered and closed without waiting for the body
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"payload_too_large"' in raw


async def test_a_chunked_body_growing_over_the_limit_gets_413() -> None:
    async with served() as (_, stream):
        chunk = b"a" * 40_000
        await stream.send_all(b"POST /policy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              + b"%x\r\n" % len(chunk) + chunk + b"\r\n" + b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        raw = await read_until_closed(stream)
    assert raw.startswith(b"HTTP/1.1 413 ")


async def test_a_request_not_whole_within_10_s_of_its_first_byte_gets_408(autojump_clock: MockClock) -> None:
    async with served() as (_, stream):
        await stream.send_all(b"POST /policy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 20\r\n\r\n{\"na")
        raw = await read_until_closed(stream)
        assert trio.current_time() == 10.0
    assert raw.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b'"code":"timeout"' in raw


async def test_headers_trickled_byte_by_byte_are_cut_off_at_10_s(autojump_clock: MockClock) -> None:
    async with served() as (_, stream):
        head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100
        for byte in head:
            try:
                await stream.send_all(bytes([byte]))
            except trio.BrokenResourceError:  # the server closed on us
                break
            await trio.sleep(0.5)
        assert trio.current_time() == 10.5  # the first byte after the cut at 10 s finds it closed
        raw = await read_until_closed(stream)
    assert raw.startswith(b"HTTP/1.1 408 ")


async def test_an_idle_keep_alive_connection_is_closed_after_30_s_without_a_word(autojump_clock: MockClock) -> None:
    async with served() as (client, stream):
        assert (await client.get("/health")).status == 200
        start = trio.current_time()
        assert await read_until_closed(stream) == b""
        assert trio.current_time() - start == 30.0


async def test_garbage_gets_a_json_400_and_the_connection_closes() -> None:
    async with served() as (_, stream):
        await stream.send_all(b"\x16\x03\x01\x02\x00 not http\r\n\r\n")
        raw = await read_until_closed(stream)
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["code"] == "bad_request"


def _with(extra: Answer | Exception) -> list[object]:
    async def endpoint(state: ApiState, request: ApiRequest) -> Answer:
        if isinstance(extra, Exception):
            raise extra
        return extra

    return [route("GET", "/extra", endpoint), *endpoints(ApiSettings(port=0))]


async def test_a_bug_in_an_endpoint_is_a_500_logged_once_and_the_connection_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with served(routes=_with(RuntimeError("boom")) ) as (client, _):  # type: ignore[arg-type]
        broken = await client.get("/extra")
        after = await client.get("/health")
    assert broken.status == 500 and broken.error == "internal"
    assert "boom" not in broken.body.decode() and "Traceback" not in broken.body.decode()
    assert after.status == 200
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None and "boom" in repr(record.exc_info[1])


async def test_a_server_of_the_node_that_does_not_answer_is_a_503() -> None:
    async with served(routes=_with(NoProcess("router is restarting"))) as (client, _):  # type: ignore[arg-type]
        answer = await client.get("/extra")
    assert answer.status == 503 and answer.error == "unavailable"


async def test_with_a_token_every_path_but_health_needs_it(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    state = make_state(ApiSettings(port=0, token=TOKEN))
    async with served(state) as (client, _):
        health = await client.get("/health")
        without = await client.get("/status")
        wrong = await client.get("/status", token=TOKEN[:-1] + "X")
        right = await client.get("/calls/nope", token=TOKEN)
    assert health.status == 200
    assert without.status == wrong.status == 401 and without.error == "unauthorized"
    assert without.headers["www-authenticate"] == 'Bearer realm="switchd"'
    assert right.status == 404  # through the door: the call is simply not there
    assert TOKEN not in caplog.text


def test_the_api_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    with pytest.raises(ValueError, match="needs a token"):
        ApiSettings(host="0.0.0.0", port=0)
    assert ApiSettings(host="0.0.0.0", port=0, token=TOKEN).token == TOKEN
    assert ApiSettings(host="::1", port=0).token is None


async def test_a_json_endpoint_refuses_another_content_type_and_a_body_that_is_not_an_object() -> None:
    async with served() as (client, _):
        text = await client.request("POST", "/policy", body=b"name=x", headers=[("Content-Type", "text/plain")])
        array = await client.request("POST", "/policy", body=b"[1]", headers=[("Content-Type", "application/json")])
        broken = await client.request("POST", "/policy", body=b"{", headers=[("Content-Type", "application/json")])
    assert text.status == 415 and text.error == "unsupported_media_type"
    assert array.status == broken.status == 400


async def test_expect_100_continue_gets_a_100_before_the_body() -> None:
    async with served() as (client, stream):
        await stream.send_all(b"POST /policy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert (await stream.receive_some(1000)).startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"{}")
        answer = await client.read_answer()
    assert answer.status == 400  # {} names no policy


async def test_a_path_parameter_is_percent_decoded_as_one_segment() -> None:
    async with served() as (client, _):
        answer = await client.get("/calls/abc%2Fdef%40host")
        bad = await client.get("/calls/%ff%fe")
    assert answer.status == 404 and "'abc/def@host'" in answer.json()["error"]["detail"]
    assert bad.status == 400


_REQUEST = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=600),
    st.builds(lambda i, junk: _REQUEST[:i] + junk + _REQUEST[i:], st.integers(0, len(_REQUEST)), st.binary(max_size=40)),
))
def test_any_bytes_get_http_answers_or_a_close_never_a_crash(data: bytes) -> None:
    async def main() -> bytes:
        state = make_state()
        with trio.fail_after(120):
            async with served(state) as (_, stream):
                await stream.send_all(data)
                await stream.send_eof()  # type: ignore[attr-defined]
                return await read_until_closed(stream)

    raw = trio.run(main, clock=MockClock(autojump_threshold=0))
    for status in _statuses(raw):  # complete HTTP responses, each one we meant to send
        assert status in (200, 400, 404, 405, 408, 413, 431, 501, 505), status


def _statuses(raw: bytes) -> list[int]:
    """The statuses of the complete responses in `raw`; AssertionError if one is cut short."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    client.receive_data(b"")
    statuses: list[int] = []
    in_response = False
    while True:
        try:
            event = client.next_event()
        except h11.RemoteProtocolError:  # the close: fine between responses, a defect inside one
            assert not in_response, f"a response was cut short: {raw[-200:]!r}"
            return statuses
        if isinstance(event, h11.Response):
            statuses.append(event.status_code)
            in_response = True
        elif isinstance(event, h11.EndOfMessage):
            in_response = False
            if client.their_state is h11.DONE:  # else MUST_CLOSE: the close comes next
                client.start_next_cycle()
                client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
                client.send(h11.EndOfMessage())
        elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            assert not in_response, f"a response was cut short: {raw[-200:]!r}"
            return statuses


async def test_a_busy_api_port_fails_the_start_naming_the_address() -> None:
    with trio.socket.socket() as busy:
        await busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        state = make_state(ApiSettings(port=port))
        with pytest.raises(OSError, match=f"API: cannot listen on 127.0.0.1:{port}: Address already in use"):
            await HttpListener.start_link(state)  # raises before it would report started
