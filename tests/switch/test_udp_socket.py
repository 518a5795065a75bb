"""The UDP socket process over real 127.0.0.1 datagrams: edge checks, received/rport, absorbed copies, sizes.

A `UdpPhone` is the far end: a UDP socket of the test's own. To know that the switch has dealt
with a datagram (and sent whatever it sends for it) without sleeping, a test sends a clean
OPTIONS after it and reads up to that OPTIONS' 200: the socket reads and answers in order.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Self

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd import otp
from switchd.otp import ChildSpec, Pid, is_process_alive, send
from switchd.sip import (
    Method,
    Request,
    Response,
    make_request,
    make_response,
    new_tag,
    parse_message,
    serialize,
)
from switchd.switch import (
    Admission,
    Dispatcher,
    Outbound,
    ReplyPath,
    UdpCounters,
    UdpDispatch,
    UdpPeer,
    UdpSettings,
    UdpSocket,
    deliver,
    udp_bound,
)
from tests.sip._mutations import mangled
from tests.sip.malformed_corpus import CASES, Case, after, answers, expected_udp

from .transport_helpers import HeldStart, request

Address = tuple[str, int]


@dataclass
class Responder:
    """A dispatcher that records what it is handed and answers OPTIONS 200 the way the node does."""

    seen: list[tuple[Request | Response, UdpPeer, str]] = field(default_factory=list)
    arrived: trio.Event = field(default_factory=trio.Event)
    fail_on: str | None = None  # a Call-ID whose dispatch raises (a bug)

    async def __call__(self, message: Request | Response, peer: UdpPeer, received_at: float, source: str) -> None:
        if message.call_id == self.fail_on:
            raise RuntimeError("a bug in dispatch")
        self.seen.append((message, peer, source))
        self.arrived.set()
        self.arrived = trio.Event()
        if isinstance(message, Request) and message.method == Method.OPTIONS:
            deliver(peer, make_response(message, 200, to_tag=new_tag()))

    @property
    def call_ids(self) -> list[str]:
        return [message.call_id for message, _, _ in self.seen]

    async def wait_for(self, count: int) -> list[Request | Response]:
        with trio.fail_after(10):
            while len(self.seen) < count:
                await self.arrived.wait()
        return [m for m, _, _ in self.seen]


class UdpPhone:
    """The far end: a socket of its own on 127.0.0.1, sending to the switch and reading what comes back."""

    def __init__(self, server: Address) -> None:
        self.server = server
        self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        self.probes = 0

    async def __aenter__(self) -> Self:
        await self.sock.bind(("127.0.0.1", 0))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.sock.close()

    @property
    def address(self) -> Address:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    async def send(self, data: bytes) -> None:
        await self.sock.sendto(data, self.server)

    async def read_raw(self) -> bytes:
        with trio.fail_after(10):
            data, source = await self.sock.recvfrom(65_536)
        assert source[:2] == self.server  # only ever from the switch's socket
        return bytes(data)

    async def read(self) -> Request | Response:
        return parse_message(await self.read_raw())

    async def until_probe(self) -> list[str]:
        """Send a clean OPTIONS; everything that comes back before its 200, in order, as ``"<status>
        <Call-ID>"`` (read without a parser: an answer to a bad request may lack the header that was bad)."""
        self.probes += 1
        call_id = f"probe-{self.probes}"
        await self.send(request("OPTIONS", call_id, branch=f"z9hG4bKprobe{self.probes}"))
        got: list[str] = []
        while True:
            got += answers(await self.read_raw(), False)
            if got[-1:] == [f"200 {call_id}"]:
                return got[:-1]


@contextmanager
def victim() -> Iterator[socket.socket]:
    """A bystander's socket on 127.0.0.1, which nothing may ever be sent to."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def got_nothing(sock: socket.socket) -> bool:
    try:
        sock.recv(65_536, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    return False


@asynccontextmanager
async def udp_socket(dispatch: UdpDispatch, udp_settings: UdpSettings | None = None,
                     counters: UdpCounters | None = None) -> AsyncIterator[tuple[Pid, Address]]:
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(partial(UdpSocket.start_link, "127.0.0.1", 0, udp_settings or UdpSettings(),
                                               dispatch, counters=counters, name="udp:test"))
        host, _, port = (await udp_bound(pid)).rpartition(":")
        yield pid, (host, int(port))
        nursery.cancel_scope.cancel()


def parse(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


# -- the reply path ----------------------------------------------------------------------------


async def test_a_request_reaches_the_dispatcher_with_the_reply_path_to_its_source() -> None:
    responder = Responder()
    async with udp_socket(responder) as (pid, server), UdpPhone(server) as phone:
        await phone.send(request("OPTIONS", "o1"))
        answer = await phone.read()
        assert isinstance(answer, Response) and (answer.status, answer.call_id) == (200, "o1")
        [(message, peer, source)] = responder.seen
        assert peer == UdpPeer(pid, phone.address, f"{server[0]}:{server[1]}")
        assert source == "127.0.0.1"
        # RFC 3581: the request was stamped with its source, and the answer carries it back
        assert (message.top_via.received, message.top_via.rport) == phone.address
        assert (answer.top_via.received, answer.top_via.rport) == phone.address


async def test_a_request_goes_to_the_address_it_is_sent_to_and_a_response_where_its_via_says() -> None:
    async with udp_socket(Responder()) as (pid, server), UdpPhone(server) as phone:
        bye = make_request(Method.BYE, f"sip:alice@{phone.address[0]}:{phone.address[1]}", from_="<sip:sw@x>",
                           to="<sip:alice@y>;tag=a", sent_by=f"{server[0]}:{server[1]}", transport="UDP")
        send(pid, Outbound(bye, phone.address))
        got = await phone.read()
        assert isinstance(got, Request) and got.method == Method.BYE
        options = parse(request("OPTIONS", "o2"))
        options.headers.set("Via", f"SIP/2.0/UDP 127.0.0.1:{phone.address[1]};branch=z9hG4bKx;received=127.0.0.1;"
                                   f"rport={phone.address[1]}")
        send(pid, Outbound(make_response(options, 200, to_tag="t")))  # no address: the Via's
        again = await phone.read()
        assert isinstance(again, Response) and again.call_id == "o2"


async def test_a_request_without_an_address_is_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    counters = UdpCounters()
    async with udp_socket(Responder(), counters=counters) as (pid, server), UdpPhone(server) as phone:
        send(pid, Outbound(parse(request("OPTIONS", "nowhere"))))
        assert await phone.until_probe() == []
    assert counters.statistics().dropped["no_destination"] == 1


# -- retransmissions ------------------------------------------------------------------------------


async def test_a_copy_of_a_request_is_absorbed_and_gets_the_same_answer_again() -> None:
    responder = Responder()
    counters = UdpCounters()
    async with udp_socket(responder, counters=counters) as (_, server), UdpPhone(server) as phone:
        data = request("OPTIONS", "twice")
        await phone.send(data)
        first = await phone.read()
        await phone.send(data)  # our 200 was "lost": the client's Timer E sends it again
        second = await phone.read()
        assert first == second
        assert responder.call_ids == ["twice"]  # the dispatcher saw it once
    assert counters.statistics().absorbed == 1


async def test_an_invite_sent_twice_reaches_the_dispatcher_once_and_the_copy_gets_the_provisional(
) -> None:
    responder = Responder()
    async with udp_socket(responder) as (_, server), UdpPhone(server) as phone:
        data = request("INVITE", "inv", body=b"v=0\r\n")
        await phone.send(data)
        [(invite, peer, _)] = [(m, p, s) for m, p, s in await _seen(responder, 1)]
        assert isinstance(invite, Request)
        await phone.send(data)
        assert await phone.until_probe() == []  # before any answer a copy is simply absorbed
        trying = make_response(invite, 100)
        deliver(peer, trying)
        assert await phone.read() == parse_message(serialize(trying))
        await phone.send(data)
        again = await phone.read()
        assert isinstance(again, Response) and again.status == 100
        assert responder.call_ids.count("inv") == 1


async def test_a_busy_after_a_provisional_is_retransmitted_until_the_ack_which_the_dispatcher_never_sees(
        mock_clock: trio.testing.MockClock) -> None:
    responder = Responder()
    async with udp_socket(responder) as (_, server), UdpPhone(server) as phone:
        invite_data = request("INVITE", "busy")
        await phone.send(invite_data)
        [(invite, peer, _)] = await _seen(responder, 1)
        assert isinstance(invite, Request)
        deliver(peer, make_response(invite, 100))
        busy = make_response(invite, 486, to_tag="b")
        deliver(peer, busy)
        assert [getattr(await phone.read(), "status", None) for _ in range(2)] == [100, 486]
        mock_clock.autojump_threshold = 0  # from now on time jumps: Timer G at +0.5 s, +1.5 s ...
        start = trio.current_time()
        for expected in (0.5, 1.5, 3.5):
            message = await phone.read()
            assert isinstance(message, Response) and message.status == 486
            assert trio.current_time() - start == pytest.approx(expected)
        await phone.send(request("ACK", "busy", to_tag="b"))  # the INVITE's branch: its transaction's
        mock_clock.autojump_threshold = float("inf")
        assert await phone.until_probe() == []
        mock_clock.autojump_threshold = 0
        with trio.move_on_after(30):  # virtual: Timer G would have fired six times by now
            data, _ = await phone.sock.recvfrom(65_536)
            raise AssertionError(f"retransmitted after the ACK: {data!r}")
        assert responder.call_ids == ["busy", "probe-1"]  # the ACK was absorbed


async def test_a_bye_whose_200_was_lost_gets_it_again_after_the_call_ended() -> None:
    responder = Responder()
    async with udp_socket(responder) as (_, server), UdpPhone(server) as phone:
        bye_data = request("BYE", "ended", to_tag="t", branch="z9hG4bKbye")
        await phone.send(bye_data)
        [(bye, peer, _)] = await _seen(responder, 1)
        assert isinstance(bye, Request)
        deliver(peer, make_response(bye, 200))
        ok = await phone.read()
        await phone.send(bye_data)
        assert await phone.read() == ok  # from the socket's transaction: no session needed for it
        assert responder.call_ids.count("ended") == 1


# -- the edge ---------------------------------------------------------------------------------------


def forged_via(data: bytes, bystander: socket.socket) -> bytes:
    """`data` with a top Via that names `bystander` every way a Via can (sent-by, maddr, received, rport)."""
    port = bystander.getsockname()[1]
    return data.replace(b"Via: SIP/2.0/TCP 127.0.0.1:5061;",
                        f"Via: SIP/2.0/UDP 127.0.0.1:{port};maddr=127.0.0.1;received=127.0.0.1;rport={port};".encode())


async def test_a_malformed_request_is_answered_400_to_its_source_never_to_the_address_its_via_names(
) -> None:
    counters = UdpCounters()
    async with udp_socket(Responder(), counters=counters) as (_, server), UdpPhone(server) as phone:
        with victim() as bystander:
            await phone.send(forged_via(request("OPTIONS", "bad id with spaces"), bystander))
            assert await phone.until_probe() == ["400 bad id with spaces"]
            assert got_nothing(bystander)
    assert counters.rejections.statistics()["sip_400"] == 1


async def test_a_forged_via_does_not_redirect_the_answer_to_a_good_request_either() -> None:
    async with udp_socket(Responder()) as (_, server), UdpPhone(server) as phone:
        with victim() as bystander:
            await phone.send(forged_via(request("OPTIONS", "redirect"), bystander))
            answer = await phone.read()
            assert isinstance(answer, Response) and (answer.status, answer.call_id) == (200, "redirect")
            assert got_nothing(bystander)


async def test_an_oversize_datagram_is_dropped_unanswered_and_counted() -> None:
    counters = UdpCounters()
    udp_settings = UdpSettings(max_message_size=1000)
    async with udp_socket(Responder(), udp_settings, counters) as (_, server), UdpPhone(server) as phone:
        await phone.send(request("OPTIONS", "big", body=b"x" * 2000))
        assert await phone.until_probe() == []
    stats = counters.statistics()
    assert stats.dropped["oversize"] == 1 and stats.received == 2


@pytest.mark.parametrize(("data", "cause"), [
    (b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), "not_sip"),  # a STUN binding request
    (b"hello", "not_sip"),
    (b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", "bad_response"),
    (b"ACK sip:x@y SIP/2.0\r\nCall-ID: bad id\r\n\r\n", "bad_request"),  # an ACK is never answered
])
async def test_what_cannot_be_answered_is_dropped_and_counted_by_cause(data: bytes, cause: str) -> None:
    counters = UdpCounters()
    async with udp_socket(Responder(), counters=counters) as (_, server), UdpPhone(server) as phone:
        await phone.send(data)
        assert await phone.until_probe() == []
    assert counters.statistics().dropped[cause] == 1


async def test_a_keep_alive_is_counted_and_otherwise_ignored() -> None:
    counters = UdpCounters()
    responder = Responder()
    async with udp_socket(responder, counters=counters) as (_, server), UdpPhone(server) as phone:
        await phone.send(b"\r\n\r\n")
        assert await phone.until_probe() == []
    assert counters.statistics().keepalives == 1
    assert responder.call_ids == ["probe-1"]


async def test_a_bug_in_dispatch_costs_a_500_to_that_request_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    responder = Responder(fail_on="boom")
    async with udp_socket(responder) as (pid, server), UdpPhone(server) as phone:
        with caplog.at_level(logging.ERROR):
            await phone.send(request("OPTIONS", "boom"))
            assert await phone.until_probe() == ["500 boom"]
        assert is_process_alive(pid)
    assert "dispatching a message of Call-ID boom failed" in caplog.text


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_each_corpus_case_over_udp_gets_its_answer_from_the_real_dispatcher_and_the_socket_goes_on(
        case: Case) -> None:
    def no_call(invite: Request, conn: ReplyPath, at: float, account: object = None) -> ChildSpec:
        raise AssertionError(f"a call was started for corpus case {case.name}")

    dispatcher = Dispatcher(session_spec=no_call, admission=Admission())
    async with udp_socket(dispatcher) as (pid, server), UdpPhone(server) as phone:
        await phone.send(case.data)
        await phone.send(after(case))
        got: list[str] = []
        while not got or got[-1] != f"200 after-{case.name}":
            got += answers(await phone.read_raw(), False)
        assert got == expected_udp(case)
        assert is_process_alive(pid)


# -- properties -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.one_of(mangled(), st.binary(max_size=1500)))
async def test_whatever_datagram_arrives_the_socket_lives_and_answers_only_its_source(data: bytes) -> None:
    responder = Responder()
    async with udp_socket(responder) as (pid, server), UdpPhone(server) as phone:
        await phone.send(data)
        got = await phone.until_probe()  # the socket still reads and answers, in order
        assert all(answer[:3].isdigit() for answer in got)  # nothing but answers comes back
        assert is_process_alive(pid)


async def _seen(responder: Responder, count: int) -> list[tuple[Request | Response, UdpPeer, str]]:
    await responder.wait_for(count)
    return responder.seen[:count]


async def test_what_the_mailbox_holds_when_the_socket_is_stopped_still_goes_out() -> None:
    async with UdpPhone(("127.0.0.1", 0)) as phone:
        async with trio.open_nursery() as nursery:
            pid: Pid = await nursery.start(partial(UdpSocket.start_link, "127.0.0.1", 0, UdpSettings(), Responder(),
                                                   name="udp:stopping"))
            host, _, port = (await udp_bound(pid)).rpartition(":")
            phone.server = (host, int(port))
            for n in range(3):  # a drain's last BYEs, queued just before the tree stops
                bye = make_request(Method.BYE, "sip:alice@127.0.0.1", from_="<sip:sw@x>", to="<sip:alice@y>;tag=a",
                                   sent_by=f"{host}:{port}", transport="UDP", call_id=f"last-{n}")
                send(pid, Outbound(bye, phone.address))
            nursery.cancel_scope.cancel()
        assert not is_process_alive(pid)
        assert [(await phone.read()).call_id for _ in range(3)] == ["last-0", "last-1", "last-2"]


# -- overload: a refusal is never queued behind another call's session start -----------------------


async def test_an_invite_admission_refuses_is_answered_503_while_an_admitted_ones_session_still_starts() -> None:
    held = HeldStart()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(otp.DynamicSupervisor.start_link, name="calls"))
        async with udp_socket(held.dispatcher) as (_, server), UdpPhone(server) as phone:
            await phone.send(request("INVITE", "admitted", branch="z9hG4bKa"))
            await phone.send(request("INVITE", "refused", branch="z9hG4bKr"))
            await phone.send(request("CANCEL", "admitted", branch="z9hG4bKa"))
            answer = await phone.read()  # (read_raw's guard: within 10 s) while the first start is held
            while answer.call_id != "refused":  # a 100 Trying for the held INVITE may come first
                answer = await phone.read()
            assert isinstance(answer, Response) and answer.status == 503
            assert held.admission.statistics().refused_rate == 1
            assert held.got == []  # the CANCEL waits for its call's session
            assert await held.release_and_receive() == ["CANCEL"]  # (its INVITE: in the spec)
        nursery.cancel_scope.cancel()
