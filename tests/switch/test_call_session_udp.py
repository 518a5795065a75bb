"""CallSession with a leg on UDP: the reply path to a UDP caller, UDP gateways, and the timers only UDP runs.

The bench (`_call_harness`) plays billing, events and the calls supervisor, and the gateways'
link processes; here a stand-in for the UDP socket process (registered as the node's would be)
records every `Outbound` with the address it is for. A caller on UDP reaches its session through
the real `Dispatcher` with the reply path ``UdpPeer(socket, its address, our address)``, as the
socket hands it over. Every test runs on the MockClock: the retransmissions are at exact times.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import trio
from trio.testing import MockClock

from switchd import otp
from switchd.billing import Disposition
from switchd.otp import Pid
from switchd.sip import (
    Dialog,
    Method,
    Request,
    Response,
    make_request,
    make_response,
    stamp_source,
)
from switchd.switch import (
    Gateway,
    Inbound,
    Outbound,
    Route,
    RouteTable,
    Target,
    Transport,
    UdpPeer,
    a_leg_name,
    b_leg_key,
    router_child_spec,
)

from ._call_harness import ANSWER_SDP, GW1, GW2, SDP, SETTINGS, Bench, Link, Phone, Wire, bench, wire

UDP_LOCAL = "10.0.0.9:5062"  # our UDP socket
ALICE = ("10.0.0.1", 5070)  # the UDP caller, as its datagrams come from
GWU = Gateway(name="gwu", host="192.0.2.50", port=5060, transport=Transport.UDP)
GWU_ONLY = Gateway(name="gwu-only", host="192.0.2.51", port=5060, transport=Transport.UDP, tcp_fallback=False)
GWU_ADDRESS = ("192.0.2.50", 5060)
UDP_TABLE = RouteTable([
    Route(id="tcp", prefix="44", targets=(Target(gateway=GW1),)),
    Route(id="udp", prefix="33", targets=(Target(gateway=GWU, priority=1), Target(gateway=GW2, priority=2))),
    Route(id="udp-only", prefix="34", targets=(Target(gateway=GWU_ONLY),)),
])
UDP_SETTINGS = replace(SETTINGS, udp_address=UDP_LOCAL)


async def _udp_socket(out: Wire) -> None:
    while True:
        msg = await otp.receive()
        if isinstance(msg, Outbound):
            out.put((wire(msg.message), msg.to))


@dataclass
class UdpPhone:
    """The caller's side of one call over UDP: its INVITE and what the socket sent it (message, address)."""

    invite: Request
    peer: UdpPeer
    wire: Wire
    dialog: Dialog | None = None

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    def send(self, message: Request | Response) -> None:
        """A datagram from the caller, as the socket hands it on (a request stamped with its source)."""
        message = wire(message)
        if isinstance(message, Request):
            stamp_source(message, *ALICE)
        otp.send(a_leg_name(self.call_id), Inbound(message, self.peer, trio.current_time()))

    async def expect(self, status: int) -> Response:
        message, to = await self.wire.next()
        assert isinstance(message, Response), f"expected {status}, got {message}"
        assert message.status == status, f"expected {status}, got {message.status} {message.reason}"
        assert to == ALICE
        return message

    async def expect_request(self, method: Method) -> Request:
        message, to = await self.wire.next()
        assert isinstance(message, Request) and message.method == method, f"expected {method}, got {message}"
        assert to == ALICE  # to the address its datagrams came from, not to its Contact
        return message

    def ack(self, ok: Response) -> None:
        self.dialog = Dialog.from_uac(self.invite, ok)
        self.send(self.dialog.make_request(Method.ACK))

    def bye(self) -> None:
        assert self.dialog is not None
        self.send(self.dialog.make_request(Method.BYE))


@dataclass
class UdpBench:
    bench: Bench
    socket: Pid
    out: Wire  # what the UDP socket was asked to send: (message, to)

    def link(self, name: str) -> Link:
        return self.bench.link(name)

    async def dial(self, number: str, *, body: bytes = SDP) -> tuple[UdpPhone, Pid]:
        """A caller on UDP sends an INVITE for `number`; the Dispatcher starts its session."""
        sent = make_request(Method.INVITE, f"sip:{number}@10.0.0.9:5062", from_="Alice <sip:alice@10.0.0.1>",
                            to=f"<sip:{number}@10.0.0.9:5062>", sent_by="10.0.0.1:5070", transport="UDP",
                            contact="<sip:alice@10.0.0.1:5070;transport=udp>",
                            headers=[("Content-Type", "application/sdp")], body=body)
        invite = wire(sent)
        assert isinstance(invite, Request)
        stamp_source(invite, *ALICE)
        peer = UdpPeer(self.socket, ALICE, UDP_LOCAL)
        await self.bench.dispatcher(invite, peer, trio.current_time())
        pid = otp.whereis(a_leg_name(invite.call_id))
        assert pid is not None
        self.bench.exits[pid] = Wire()
        await self.bench.nursery.start(otp.Process.start_link, _watch, pid, self.bench.exits[pid])
        return UdpPhone(invite, peer, self.out), pid

    async def call_udp_gateway(self) -> tuple[Phone, Pid, Link, Request]:
        """A caller on TCP dials 3312: its session is up and its INVITE reached gateway gwu (on UDP)."""
        phone, pid = await self.bench.call("3312")
        await phone.expect(100)
        gwu = self.link("gwu")
        return phone, pid, gwu, await gwu.expect_request(Method.INVITE)

    def from_gateway(self, message: Request | Response, source: tuple[str, int] = GWU_ADDRESS) -> None:
        """A datagram from a UDP gateway, as the socket hands it on."""
        message = wire(message)
        if isinstance(message, Request):
            stamp_source(message, *source)
        otp.dispatch(b_leg_key(message.call_id), Inbound(message, UdpPeer(self.socket, source, UDP_LOCAL),
                                                          trio.current_time()))


async def _watch(pid: Pid, out: Wire) -> None:
    ref = otp.monitor(pid)
    down = await otp.receive(match=lambda m: isinstance(m, otp.Down) and m.ref is ref)
    assert isinstance(down, otp.Down)
    out.put(down.reason)


@asynccontextmanager
async def udp_bench() -> AsyncIterator[UdpBench]:
    async with bench(settings=UDP_SETTINGS, router=False, gateways=("gw1", "gw2", "gwu", "gwu-only")) as b:
        await b.nursery.start(router_child_spec(UDP_TABLE, rng=random.Random(1)).start)
        out = Wire()
        socket: Pid = await b.nursery.start(otp.Process.start_link, _udp_socket, out)
        yield UdpBench(b, socket, out)


def respond(link: Link, request: Request, status: int, *, tag: str = "gwtag", body: bytes = b"") -> Response:
    """`link`'s gateway answers over UDP (its Contact says so)."""
    extra = [("Contact", "<sip:callee@192.0.2.50:5060;transport=udp>")] if status < 300 else []
    if body:
        extra.append(("Content-Type", "application/sdp"))
    return make_response(request, status, to_tag=None if status == 100 else tag, headers=extra, body=body)


# -- a caller on UDP -------------------------------------------------------------------------------


async def test_a_udp_caller_is_answered_through_its_socket_with_a_contact_on_that_socket(
        autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        phone, pid = await u.dial("4420")
        trying = await phone.expect(100)
        assert (trying.top_via.received, trying.top_via.rport) == ALICE  # the stamp, copied back
        gw1 = u.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        assert invite.top_via.transport == "TCP"  # the gateway's transport, not the caller's
        gw1.respond(invite, 180)
        ringing = await phone.expect(180)
        assert str(ringing.contact[0].uri) == f"sip:{UDP_LOCAL};transport=udp"
        gw1.respond(invite, 200, body=ANSWER_SDP)
        ok = await phone.expect(200)
        assert str(ok.contact[0].uri) == f"sip:{UDP_LOCAL};transport=udp"
        phone.ack(ok)
        await gw1.expect_request(Method.ACK)
        phone.bye()
        await phone.expect(200)
        bye = await gw1.expect_request(Method.BYE)
        gw1.respond(bye, 200)
        assert await u.bench.exited(pid) == "normal"
        assert u.bench.close(phone.call_id).disposition == Disposition.ANSWERED


async def test_a_bye_to_a_udp_caller_is_retransmitted_by_timer_e_until_its_200(autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        phone, pid = await u.dial("4420")
        await phone.expect(100)
        gw1 = u.link("gw1")
        invite = await gw1.expect_request(Method.INVITE)
        gw1.respond(invite, 200)
        phone.ack(await phone.expect(200))
        await gw1.expect_request(Method.ACK)
        gw1.bye(invite)  # the callee hangs up
        await gw1.expect_response(200)
        first = await phone.expect_request(Method.BYE)
        assert first.top_via.transport == "UDP" and first.top_via.sent_by == UDP_LOCAL
        sent_at = trio.current_time()
        again = await phone.expect_request(Method.BYE)
        assert trio.current_time() - sent_at == 0.5 and again.branch == first.branch
        await phone.expect_request(Method.BYE)
        assert trio.current_time() - sent_at == 1.5
        phone.send(make_response(first, 200))
        assert await u.bench.exited(pid) == "normal"
        assert trio.current_time() - sent_at == 1.5  # its answer ends the call: no wait for Timer K
        assert u.out.empty()


# -- a gateway on UDP -------------------------------------------------------------------------------


async def test_a_udp_gateway_gets_a_udp_invite_retransmitted_by_timer_a_until_its_first_provisional(
        autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        _, _, gwu, invite = await u.call_udp_gateway()
        assert (invite.top_via.transport, invite.top_via.sent_by) == ("UDP", UDP_LOCAL)
        assert str(invite.contact[0].uri) == f"sip:{UDP_LOCAL};transport=udp"
        assert invite.uri.param("transport") == "udp"
        sent_at = trio.current_time()
        for after in (0.5, 1.5):
            again = await gwu.expect_request(Method.INVITE)
            assert again.branch == invite.branch and trio.current_time() - sent_at == after
        u.from_gateway(respond(gwu, invite, 100))
        await trio.sleep(30)
        assert gwu.out.empty()  # Timer A stopped at the 100; Timer B with it


async def test_a_udp_gateway_that_never_answers_fails_over_at_timer_b(autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        _, _, gwu, _ = await u.call_udp_gateway()
        sent_at = trio.current_time()
        invite2 = await u.link("gw2").expect_request(Method.INVITE)
        assert trio.current_time() - sent_at == 32.0  # 64*T1
        assert invite2.top_via.transport == "TCP"
        for _ in range(6):  # at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5, all before the failover
            await gwu.expect_request(Method.INVITE)
        assert gwu.out.empty()


async def test_a_retransmitted_2xx_from_a_udp_callee_is_acked_again(autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        phone, _, gwu, invite = await u.call_udp_gateway()
        ok = respond(gwu, invite, 200, body=ANSWER_SDP)
        u.from_gateway(ok)
        phone.ack(await phone.expect(200))
        first = await _next_request(gwu, Method.ACK)
        u.from_gateway(ok)  # our ACK was lost: the callee's 2xx retransmission
        again = await _next_request(gwu, Method.ACK)
        assert (again.call_id, again.cseq.seq) == (first.call_id, first.cseq.seq)


async def test_a_udp_callees_bye_is_answered_to_the_address_it_came_from(autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        phone, pid, gwu, invite = await u.call_udp_gateway()
        u.from_gateway(respond(gwu, invite, 200))
        phone.ack(await phone.expect(200))
        ack = await _next_request(gwu, Method.ACK)
        callee = Dialog.from_uas(invite, "gwtag", contact=respond(gwu, invite, 200).contact[0])
        callee.confirm()
        bye = callee.make_request(Method.BYE)
        u.from_gateway(bye, source=("192.0.2.50", 40000))
        answer, to = await u.out.next()
        assert isinstance(answer, Response) and (answer.status, answer.call_id) == (200, ack.call_id)
        assert to == ("192.0.2.50", 40000)
        caller_bye = await phone.expect_request(Method.BYE)
        phone.answer(caller_bye)
        assert await u.bench.exited(pid) == "normal"


async def test_a_busy_udp_gateway_ends_the_call_at_once_not_after_timer_d(autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        phone, pid, gwu, invite = await u.call_udp_gateway()
        u.from_gateway(respond(gwu, invite, 100))
        busy_at = trio.current_time()
        u.from_gateway(respond(gwu, invite, 486))
        await phone.expect(486)
        assert await u.bench.exited(pid) == "normal"
        assert trio.current_time() == busy_at  # its ACK went out; Timer D is the transaction's, not the call's


async def test_an_invite_too_large_for_udp_goes_to_the_gateway_over_tcp(autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        big = SDP + b"a=x-padding:" + b"p" * 1200 + b"\r\n"
        phone, _ = await u.dial("3312", body=big)
        await phone.expect(100)
        gwu = u.link("gwu")
        invite = await gwu.expect_request(Method.INVITE)
        assert invite.top_via.transport == "TCP" and invite.uri.param("transport") == "tcp"  # RFC 3261 §18.1.1
        await trio.sleep(2)
        assert gwu.out.empty()  # over TCP: no Timer A


async def test_a_gateway_that_takes_only_udp_gets_even_a_large_invite_over_udp(autojump_clock: MockClock) -> None:
    async with udp_bench() as u:
        big = SDP + b"a=x-padding:" + b"p" * 1200 + b"\r\n"
        phone, _ = await u.dial("3412", body=big)
        await phone.expect(100)
        invite = await u.link("gwu-only").expect_request(Method.INVITE)
        assert invite.top_via.transport == "UDP"


async def _next_request(link: Link, method: Method) -> Request:
    """The next `method` request `link` got, skipping what Timer A retransmitted before it."""
    while True:
        message = await link.out.next()
        if isinstance(message, Request) and message.method == method:
            return message
