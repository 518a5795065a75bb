"""A link to a registered phone's contact exits once unused for idle_exit; a gateway's link never does."""

from __future__ import annotations

import trio
import trio.testing

from switchd.otp import Pid, Process, is_process_alive, send, whereis
from switchd.sip import Response, make_response
from switchd.switch._gateway_link import LinkSettings
from switchd.switch._wire import Outbound, ToGateway, gateway_name

from .test_gateway_link import gateway_server, invite, link_to, udp_invite, udp_link
from .transport_helpers import Peer


async def _session(done: trio.Event) -> None:
    await done.wait()


async def test_an_unused_contact_link_closes_its_connection_and_exits_normally(
        mock_clock: trio.testing.MockClock) -> None:
    async with gateway_server() as (port, listener), link_to(port, LinkSettings(idle_exit=30.0)) as s:
        done = trio.Event()
        session: Pid = await s.nursery.start(Process.start_link, _session, done)
        send(s.link, ToGateway(invite("b1"), session))
        stream = await listener.accept()
        await Peer(stream).read()
        mock_clock.jump(100.0)  # in use: the link stays, however long
        await trio.testing.wait_all_tasks_blocked()
        assert is_process_alive(s.link)
        done.set()  # the call ends: nobody uses the link any more
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(29.0)
        await trio.testing.wait_all_tasks_blocked()
        assert is_process_alive(s.link)
        mock_clock.jump(1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert not is_process_alive(s.link) and whereis(gateway_name("gw1")) is None
        assert await stream.receive_some(100) == b""  # the phone sees the connection closed


async def test_what_a_contact_link_writes_restarts_its_idle_exit(mock_clock: trio.testing.MockClock) -> None:
    async with gateway_server() as (port, listener), link_to(port, LinkSettings(idle_exit=30.0)) as s:
        done = trio.Event()
        session: Pid = await s.nursery.start(Process.start_link, _session, done)
        send(s.link, ToGateway(invite("b1"), session))
        phone = Peer(await listener.accept())
        await phone.read()
        done.set()  # the call ends: nobody uses the link any more
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(20.0)
        await trio.testing.wait_all_tasks_blocked()
        # an answer to a request the phone sent in on this connection (written in the sender's task if it may)
        send(s.link, Outbound(make_response(invite("in-1"), 200)))
        assert isinstance(await phone.read(), Response)
        mock_clock.jump(29.0)  # 49 s since the call ended, 29 since the write: still in use
        await trio.testing.wait_all_tasks_blocked()
        assert is_process_alive(s.link)
        mock_clock.jump(1.0)
        await trio.testing.wait_all_tasks_blocked()
        assert not is_process_alive(s.link)


async def test_a_gateway_link_stays_however_long_it_is_unused(mock_clock: trio.testing.MockClock) -> None:
    async with gateway_server() as (port, _), link_to(port) as s:
        mock_clock.jump(10 * 365 * 86400.0)
        await trio.testing.wait_all_tasks_blocked()
        assert is_process_alive(s.link)


async def test_a_udp_contacts_link_stays_while_a_call_uses_it_and_exits_once_unused(
        mock_clock: trio.testing.MockClock) -> None:
    settings = LinkSettings(udp_socket="udp:test", idle_exit=30.0)
    async with udp_link("127.0.0.1", settings) as (s, socket_box):
        done = trio.Event()
        session: Pid = await s.nursery.start(Process.start_link, _session, done)
        send(s.link, ToGateway(udp_invite("u1"), session))
        await socket_box.next(0)
        mock_clock.jump(100.0)  # a long call: no message on the link, but its session lives
        await trio.testing.wait_all_tasks_blocked()
        assert is_process_alive(s.link)  # the BYE at the end still finds it
        done.set()
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(30.0)
        await trio.testing.wait_all_tasks_blocked()
        assert not is_process_alive(s.link)
