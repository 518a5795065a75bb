"""Sockets a parent handed down: the listener and the UDP socket use them instead of binding their address."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Literal

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from switchd.otp import DynamicSupervisor, Pid
from switchd.switch import (
    SOCKETS_ENV,
    InheritedSocket,
    Listener,
    UdpSettings,
    UdpSocket,
    encode_sockets,
    inherited_sockets,
    is_inherited,
    listening_on,
    parse_sockets,
    udp_bound,
)
from switchd.switch._sip_connection import ConnectionSettings

from .test_udp_socket import Responder
from .transport_helpers import Recorder, request

CONFIGURED = 5999  # the port the configuration names; the parent's socket is on another one


@contextmanager
def handed_down(monkeypatch: pytest.MonkeyPatch, kind: int) -> Iterator[socket.socket]:
    """A SO_REUSEPORT socket on 127.0.0.1 (a free port), named in the environment for 127.0.0.1:CONFIGURED."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            sock.listen()
        name: Literal["tcp", "udp"] = "tcp" if kind == socket.SOCK_STREAM else "udp"
        monkeypatch.setenv(SOCKETS_ENV, encode_sockets([InheritedSocket(name, "127.0.0.1", CONFIGURED, sock.fileno())]))
        yield sock


entries = st.builds(InheritedSocket, st.sampled_from(["tcp", "udp"]),
                    st.from_regex(r"[A-Za-z0-9.:\[\]-]{1,20}", fullmatch=True),
                    st.integers(0, 65_535), st.integers(0, 10_000))


@given(st.lists(entries, max_size=5))
def test_the_environment_names_every_socket_as_the_parent_encoded_it(sockets: list[InheritedSocket]) -> None:
    assert parse_sockets(encode_sockets(sockets)) == tuple(sockets)


@pytest.mark.parametrize("text", ["tcp 127.0.0.1 5060", "sctp 127.0.0.1 5060 3", "tcp 127.0.0.1 port 3",
                                  "tcp 127.0.0.1 5060 -3", "tcp  127.0.0.1 5060 3"])
def test_a_malformed_entry_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match=SOCKETS_ENV):
        parse_sockets(text)


def test_without_the_environment_nothing_is_inherited() -> None:
    assert inherited_sockets("tcp", "127.0.0.1", CONFIGURED, environ={}) == []
    assert not is_inherited("tcp", "127.0.0.1", CONFIGURED, environ={})


def test_each_taker_gets_a_duplicate_and_closing_it_leaves_the_parents_socket_open(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with handed_down(monkeypatch, socket.SOCK_STREAM) as parent:
        assert is_inherited("tcp", "127.0.0.1", CONFIGURED)
        assert not is_inherited("udp", "127.0.0.1", CONFIGURED)
        [taken] = inherited_sockets("tcp", "127.0.0.1", CONFIGURED)
        assert taken.fileno() != parent.fileno()
        assert taken.getsockname() == parent.getsockname()
        taken.close()
        os.fstat(parent.fileno())  # still open
        assert parent.getsockname()[1] > 0


async def test_the_listener_accepts_on_the_handed_down_socket_and_a_new_listener_gets_it_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with handed_down(monkeypatch, socket.SOCK_STREAM) as parent:
        port = parent.getsockname()[1]
        for attempt in ("first", "restarted"):
            recorder = Recorder()
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(DynamicSupervisor.start_link, name="connections"))
                await nursery.start(partial(Listener.start_link, "127.0.0.1", CONFIGURED, ConnectionSettings(),
                                            recorder))
                assert await listening_on() == [("127.0.0.1", port)]
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.send_all(request("OPTIONS", attempt))
                assert [m.call_id for m in await recorder.wait_for(1)] == [attempt]
                await stream.aclose()
                nursery.cancel_scope.cancel()
            os.fstat(parent.fileno())  # the listener closed its duplicate only


async def test_the_udp_socket_reads_from_the_handed_down_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    with handed_down(monkeypatch, socket.SOCK_DGRAM) as parent:
        port = parent.getsockname()[1]
        responder = Responder()
        async with trio.open_nursery() as nursery:
            pid: Pid = await nursery.start(partial(UdpSocket.start_link, "127.0.0.1", CONFIGURED, UdpSettings(),
                                                   responder, name="udp:test"))
            assert await udp_bound(pid) == f"127.0.0.1:{port}"
            with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
                await phone.bind(("127.0.0.1", 0))
                await phone.sendto(request("OPTIONS", "over-udp"), ("127.0.0.1", port))
                answer = await phone.recv(65_536)
            assert b"200" in answer.split(b"\r\n", 1)[0]
            assert [m.call_id for m, _, _ in responder.seen] == ["over-udp"]
            nursery.cancel_scope.cancel()
        os.fstat(parent.fileno())
