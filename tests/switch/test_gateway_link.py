"""GatewayLink over real 127.0.0.1 TCP: lazy connect, reuse, GatewayFailed, reconnect, dispatch of replies."""

from __future__ import annotations

import dataclasses
import select
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio
import trio.testing

from switchd.otp import Pid, Process, send, whereis
from switchd.sip import Request, Response, make_response, parse_message
from switchd.switch import Gateway
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
            assert link._proc.mailbox_depth() == 3  # not taken yet: the shutdown comes first
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
