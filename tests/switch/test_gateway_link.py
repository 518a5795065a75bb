"""GatewayLink over real 127.0.0.1 TCP: lazy connect, reuse, GatewayFailed, reconnect, dispatch of replies."""

from __future__ import annotations

import dataclasses
import select
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import pytest
import trio
import trio.testing

from switchd.otp import Pid, Process, send, whereis
from switchd.sip import Request, Response, make_response, parse_message
from switchd.switch import Gateway, Transport
from switchd.switch._gateway_link import GatewayLink, LinkSettings
from switchd.switch._sip_connection import ConnectionSettings
from switchd.switch._wire import GatewayFailed, Outbound, ToGateway, gateway_name

from .test_dispatch import Mailbox
from .transport_helpers import Peer, Recorder, request, response


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def invite(call_id: str) -> Request:
    message = parse_message(request("INVITE", call_id, uri="sip:bob@127.0.0.1"))
    assert isinstance(message, Request)
    return message


@dataclass
class Setup:
    nursery: trio.Nursery
    link: Pid
    session: Pid
    session_box: Mailbox
    recorder: Recorder


@asynccontextmanager
async def link_to(port: int, settings: LinkSettings | None = None) -> AsyncIterator[Setup]:
    recorder = Recorder()
    gateway = Gateway(name="gw1", host="127.0.0.1", port=port)
    async with trio.open_nursery() as nursery:
        link: Pid = await nursery.start(partial(GatewayLink.start_link, gateway, ConnectionSettings(), recorder,
                                                settings or LinkSettings()))
        box = Mailbox()
        session: Pid = await nursery.start(Process.start_link, box.run)
        yield Setup(nursery, link, session, box, recorder)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def gateway_server() -> AsyncIterator[tuple[int, trio.SocketListener]]:
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        yield listener.socket.getsockname()[1], listener


async def test_the_link_registers_under_the_gateway_name_and_connects_only_on_first_use() -> None:
    async with gateway_server() as (port, listener), link_to(port) as s:
        assert whereis(gateway_name("gw1")) == s.link
        await trio.testing.wait_all_tasks_blocked()
        assert select.select([listener.socket.fileno()], [], [], 0)[0] == []  # no connection pending
        send(s.link, ToGateway(invite("b1"), s.session))
        peer = Peer(await listener.accept())
        got = await peer.read()
        assert isinstance(got, Request) and got.call_id == "b1"


async def test_a_refused_connection_tells_the_sender_gateway_failed() -> None:
    async with link_to(closed_port()) as s:
        send(s.link, ToGateway(invite("b1"), s.session))
        failed = await s.session_box.next(0)
        assert isinstance(failed, GatewayFailed)
        assert (failed.gateway, failed.call_id) == ("gw1", "b1")
        assert "cannot connect" in failed.reason


async def test_after_a_failed_connect_messages_within_the_holddown_fail_without_a_new_attempt(
        mock_clock: trio.testing.MockClock) -> None:
    async with link_to(closed_port(), LinkSettings(holddown=1.0)) as s:
        for call_id in ("b1", "b2"):
            send(s.link, ToGateway(invite(call_id), s.session))
        first, second = await s.session_box.next(0), await s.session_box.next(1)
        assert isinstance(first, GatewayFailed) and "held down" not in first.reason
        assert isinstance(second, GatewayFailed) and "held down for 1s" in second.reason
        mock_clock.jump(1.0)
        send(s.link, ToGateway(invite("b3"), s.session))
        third = await s.session_box.next(2)
        assert isinstance(third, GatewayFailed) and "held down" not in third.reason


async def test_messages_reuse_one_connection_and_replies_are_dispatched_with_the_link_as_conn() -> None:
    async with gateway_server() as (port, listener), link_to(port) as s:
        send(s.link, ToGateway(invite("b1"), s.session))
        peer = Peer(await listener.accept())
        first = await peer.read()
        send(s.link, ToGateway(invite("b2"), s.session))
        second = await peer.read()  # same connection
        assert isinstance(first, Request) and isinstance(second, Request)
        assert (first.call_id, second.call_id) == ("b1", "b2")
        await peer.send(response(180, "b1") + request("BYE", "b1", to_tag="x", cseq=5))
        ringing, bye = await s.recorder.wait_for(2)
        assert isinstance(ringing, Response) and ringing.status == 180
        assert [conn for _, conn, _ in s.recorder.seen] == [s.link, s.link]
        assert isinstance(bye, Request)
        send(s.link, Outbound(make_response(bye, 200)))  # the session answers the callee's BYE
        ok = await peer.read()
        assert isinstance(ok, Response) and (ok.status, ok.call_id) == (200, "b1")


async def test_a_dropped_connection_tells_its_sessions_and_the_next_message_reconnects() -> None:
    async with gateway_server() as (port, listener), link_to(port) as s:
        send(s.link, ToGateway(invite("b1"), s.session))
        first = await listener.accept()
        assert isinstance(await Peer(first).read(), Request)
        await first.aclose()  # the gateway drops the connection
        failed = await s.session_box.next(0)
        assert isinstance(failed, GatewayFailed) and failed.call_id == "b1"
        assert "connection lost" in failed.reason
        send(s.link, ToGateway(invite("b2"), s.session))
        again = Peer(await listener.accept())
        got = await again.read()
        assert isinstance(got, Request) and got.call_id == "b2"


async def test_a_session_that_exited_is_not_told_about_a_later_drop() -> None:
    async with gateway_server() as (port, listener), link_to(port) as s:
        gone = Mailbox()
        async with trio.open_nursery() as short:
            brief: Pid = await short.start(Process.start_link, gone.run)
            send(s.link, ToGateway(invite("b1"), brief))
            first = await listener.accept()
            assert isinstance(await Peer(first).read(), Request)
            short.cancel_scope.cancel()
        send(s.link, ToGateway(invite("b2"), s.session))
        assert isinstance(await Peer(first).read(), Request)
        await first.aclose()
        failed = await s.session_box.next(0)
        assert isinstance(failed, GatewayFailed) and failed.call_id == "b2"
        assert gone.got == []


# --- shutdown: the terminate path ------------------------------------------------------------------


def bye(call_id: str) -> Request:
    message = parse_message(request("BYE", call_id, to_tag="x", cseq=2, uri="sip:bob@127.0.0.1"))
    assert isinstance(message, Request)
    return message


async def test_a_link_shut_down_writes_what_its_mailbox_holds_in_order_then_closes() -> None:
    async with gateway_server() as (port, listener):
        gateway = Gateway(name="gw1", host="127.0.0.1", port=port)
        async with trio.open_nursery() as nursery:
            link: Pid = await nursery.start(partial(GatewayLink.start_link, gateway, ConnectionSettings(), Recorder()))
            session: Pid = await nursery.start(Process.start_link, Mailbox().run)
            send(link, ToGateway(invite("b1"), session))
            peer = Peer(await listener.accept())
            assert isinstance(await peer.read(), Request)
            send(link, ToGateway(bye("b1"), session))  # what the drained sessions' terminates queue
            send(link, Outbound(make_response(bye("b9"), 200)))
            send(link, ToGateway(bye("b2"), session))
            # b1's BYE and the response are written at once by their senders (the link's inline
            # handler); b2 is a new B-leg for the link: it waits in the mailbox for the shutdown
            assert link._proc.mailbox_depth() == 1
            nursery.cancel_scope.cancel()  # what its supervisor does on shutdown
        got = [await peer.read() for _ in range(3)]
        assert [(type(m).__name__, m.call_id) for m in got if m is not None] == [
            ("Request", "b1"), ("Response", "b9"), ("Request", "b2")]
        assert await peer.read() is None  # then closed


async def test_a_gateway_that_does_not_read_holds_the_shutdown_no_longer_than_shutdown_flush(
        mock_clock: trio.testing.MockClock) -> None:
    big = dataclasses.replace(invite("b2"), body=b"x" * 1_000_000)
    async with gateway_server() as (port, listener):
        gateway = Gateway(name="gw1", host="127.0.0.1", port=port)
        async with trio.open_nursery() as nursery:
            link: Pid = await nursery.start(partial(GatewayLink.start_link, gateway,
                                                    ConnectionSettings(send_queue_size=1_000), Recorder()))
            session: Pid = await nursery.start(Process.start_link, Mailbox().run)
            send(link, ToGateway(invite("b1"), session))
            peer = Peer(await listener.accept())  # connected on real time; from now on the clock jumps
            assert isinstance(await peer.read(), Request)
            mock_clock.autojump_threshold = 0
            for _ in range(40):  # 40 MB: more than the socket buffers hold, and the gateway never reads
                send(link, ToGateway(big, session))
            shut_down_at = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - shut_down_at == 1.0  # ConnectionSettings.shutdown_flush
        assert not link._proc.alive


# --- a gateway on UDP: its requests go out through the node's UDP socket --------------------------


def udp_invite(call_id: str) -> Request:
    message = invite(call_id)
    message.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-udp")
    return message


@asynccontextmanager
async def udp_link(host: str, settings: LinkSettings) -> AsyncIterator[tuple[Setup, Mailbox]]:
    """A link to a gateway on UDP at `host`:5090, and a stand-in registered as the UDP socket "udp:test"."""
    socket_box = Mailbox()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(Process.start_link, socket_box.run, name="udp:test"))
        gateway = Gateway(name="gw1", host=host, port=5090, transport=Transport.UDP)
        link: Pid = await nursery.start(partial(GatewayLink.start_link, gateway, ConnectionSettings(), Recorder(),
                                                settings))
        box = Mailbox()
        session: Pid = await nursery.start(Process.start_link, box.run)
        yield Setup(nursery, link, session, box, Recorder()), socket_box
        nursery.cancel_scope.cancel()


async def test_a_udp_request_goes_to_the_udp_socket_with_the_gateways_address() -> None:
    async with udp_link("127.0.0.1", LinkSettings(udp_socket="udp:test")) as (s, socket_box):
        for call_id in ("u1", "u2"):
            send(s.link, ToGateway(udp_invite(call_id), s.session))
        first, second = await socket_box.next(0), await socket_box.next(1)
        assert isinstance(first, Outbound) and isinstance(second, Outbound)
        assert (first.message.call_id, first.to) == ("u1", ("127.0.0.1", 5090))
        assert second.to == ("127.0.0.1", 5090)
        assert s.session_box.got == []  # nothing failed


async def test_a_udp_gateways_name_is_resolved_once_to_an_ipv4_address_first() -> None:
    async with udp_link("localhost", LinkSettings(udp_socket="udp:test")) as (s, socket_box):
        send(s.link, ToGateway(udp_invite("u1"), s.session))
        sent = await socket_box.next(0)
        assert isinstance(sent, Outbound) and sent.to == ("127.0.0.1", 5090)


async def test_without_a_udp_socket_a_udp_request_fails_back_to_its_session() -> None:
    async with udp_link("127.0.0.1", LinkSettings()) as (s, socket_box):
        send(s.link, ToGateway(udp_invite("u1"), s.session))
        failed = await s.session_box.next(0)
        assert isinstance(failed, GatewayFailed) and "no UDP socket" in failed.reason
        assert socket_box.got == []


async def test_a_udp_socket_that_is_not_running_fails_the_request_back() -> None:
    async with udp_link("127.0.0.1", LinkSettings(udp_socket="udp:elsewhere")) as (s, _):
        send(s.link, ToGateway(udp_invite("u1"), s.session))
        failed = await s.session_box.next(0)
        assert isinstance(failed, GatewayFailed) and "not running" in failed.reason


async def test_a_gateway_name_that_does_not_resolve_in_time_fails_the_request_back(
        mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    async def never(*args: object, **kwargs: object) -> list[object]:  # a resolver that never answers
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    monkeypatch.setattr(trio.socket, "getaddrinfo", never)
    async with udp_link("gw.example.invalid", LinkSettings(udp_socket="udp:test", connect_timeout=2.0)) as (s, _):
        mock_clock.autojump_threshold = 0
        send(s.link, ToGateway(udp_invite("u1"), s.session))
        failed = await s.session_box.next(0)
        assert isinstance(failed, GatewayFailed) and "no answer within 2s" in failed.reason


async def test_a_request_the_size_rule_sent_over_tcp_takes_the_gateways_tcp_connection() -> None:
    async with gateway_server() as (port, listener):
        gateway = Gateway(name="gw1", host="127.0.0.1", port=port, transport=Transport.UDP)
        async with trio.open_nursery() as nursery:
            link: Pid = await nursery.start(partial(GatewayLink.start_link, gateway, ConnectionSettings(), Recorder(),
                                                    LinkSettings(udp_socket="udp:none")))
            session: Pid = await nursery.start(Process.start_link, Mailbox().run)
            send(link, ToGateway(invite("big"), session))  # its Via says TCP
            peer = Peer(await listener.accept())
            got = await peer.read()
            assert isinstance(got, Request) and got.call_id == "big"
            nursery.cancel_scope.cancel()
