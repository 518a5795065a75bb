"""A test bench for CallSessions: a caller's connection, gateway links, billing and events as processes.

Every process here stands in for a real one under its real registered name, so the session under
test finds them exactly as it finds them in the daemon: the caller's connection process (collects
`Outbound`), one link per gateway (`gateway_name(gw)`, collects `ToGateway`), "billing" (records
the CDR steps), "events" (a real EventManager with a recording handler), "router" (the real
Router) and "calls" (the real DynamicSupervisor). Messages are put through serialize/parse on the
way, so what the session sends is proven to be valid SIP.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio

from switchd import otp
from switchd.billing import CdrClose
from switchd.otp import Caller, ChildSpec, GenServer, Pid, Reply
from switchd.sip import (
    Dialog,
    Method,
    Request,
    Response,
    TimerConfig,
    make_cancel,
    make_request,
    make_response,
    parse_message,
    parse_name_addr,
    serialize,
)
from switchd.switch import (
    CallSettings,
    Gateway,
    GatewayFailed,
    Inbound,
    Outbound,
    Route,
    RouteTable,
    Target,
    ToGateway,
    a_leg_name,
    b_leg_key,
    call_session_spec,
    gateway_name,
    router_child_spec,
)

GW1 = Gateway(name="gw1", host="127.0.0.1", port=5071)
GW2 = Gateway(name="gw2", host="127.0.0.1", port=5072)
DOWN = Gateway(name="down", host="127.0.0.1", port=5079)  # no link process: unreachable
TABLE = RouteTable([
    Route(id="uk", prefix="44", targets=(Target(gateway=GW1, priority=1), Target(gateway=GW2, priority=2))),
    Route(id="down-first", prefix="9",
          targets=(Target(gateway=DOWN, priority=1), Target(gateway=GW2, priority=2))),
    Route(id="one", prefix="7", targets=(Target(gateway=GW1),)),
    Route(id="intl", prefix="011", targets=(Target(gateway=GW1),)),
])
SDP = b"v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
ANSWER_SDP = (b"v=0\r\no=bob 1 1 IN IP4 192.0.2.4\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\n"
              b"m=audio 5000 RTP/AVP 0\r\n")
SETTINGS = CallSettings(node="test", local_address="10.0.0.9:5060", timers=TimerConfig(), no_answer=60.0,
                        max_call_duration=3600.0, billing_timeout=1.0, retry_delay=0.25)
PATIENCE = 7200.0  # virtual seconds a test waits for a message before failing instead of hanging


def wire(message: Request | Response) -> Request | Response:
    return parse_message(serialize(message))


class Wire:
    """What a test process received, in order; `next()` waits for the next one."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[Any](math.inf)

    def put(self, item: Any) -> None:
        self._send.send_nowait(item)

    async def next(self) -> Any:
        with trio.fail_after(PATIENCE):
            return await self._receive.receive()

    def empty(self) -> bool:
        return self._receive.statistics().current_buffer_used == 0


_CLOSE = "close"  # tells a caller link to exit, as a connection process does when its peer hangs up


async def _caller_link(out: Wire) -> None:
    while True:
        msg = await otp.receive()
        if isinstance(msg, Outbound):
            out.put(wire(msg.message))
        elif msg == _CLOSE:
            return


async def _gateway_link(out: Wire, replies: dict[str, Pid]) -> None:
    while True:
        msg = await otp.receive()
        if isinstance(msg, ToGateway):
            replies[msg.message.call_id] = msg.reply_to
            out.put(wire(msg.message))
        elif isinstance(msg, Outbound):
            out.put(wire(msg.message))


async def _watch(pid: Pid, out: Wire) -> None:
    ref = otp.monitor(pid)
    down = await otp.receive(match=lambda m: isinstance(m, otp.Down) and m.ref is ref)
    assert isinstance(down, otp.Down)
    out.put(down.reason)


class BillingRecorder(GenServer[list[Any]]):
    """Stands in for the BillingStore: records every CDR step with the virtual time it came."""

    async def init(self, steps: list[Any]) -> list[Any]:
        return steps

    async def handle_call(self, request: Any, caller: Caller, state: list[Any]) -> Reply[list[Any]]:
        state.append(request)
        return Reply(None, state)


class EventRecorder(otp.EventHandler[list[Any]]):
    async def init(self, arg: list[Any]) -> list[Any]:
        return arg

    async def handle_event(self, event: Any, state: list[Any]) -> list[Any]:
        state.append(event)
        return state


@dataclass
class Phone:
    """The caller's side of one call: its INVITE, its own connection process and what that received."""

    invite: Request
    conn: Pid
    wire: Wire
    dialog: Dialog | None = None

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    def send(self, message: Request | Response) -> None:
        otp.send(a_leg_name(self.call_id), Inbound(wire(message), self.conn, trio.current_time()))

    async def expect(self, status: int) -> Response:
        message = await self.wire.next()
        assert isinstance(message, Response), f"expected {status}, got {message}"
        assert message.status == status, f"expected {status}, got {message.status} {message.reason}"
        return message

    async def expect_request(self, method: Method) -> Request:
        message = await self.wire.next()
        assert isinstance(message, Request) and message.method == method, f"expected {method}, got {message}"
        return message

    def ack(self, ok: Response) -> None:
        self.dialog = Dialog.from_uac(self.invite, ok)
        self.send(self.dialog.make_request(Method.ACK))

    def bye(self) -> Request:
        assert self.dialog is not None
        bye = self.dialog.make_request(Method.BYE)
        self.send(bye)
        return bye

    def cancel(self) -> Request:
        cancel = make_cancel(self.invite)
        self.send(cancel)
        return cancel

    def answer(self, request: Request, status: int = 200) -> None:
        self.send(make_response(request, status))


@dataclass
class Link:
    """A gateway's side: the link process registered as gateway_name(name) and what it received."""

    name: str
    pid: Pid
    out: Wire
    replies: dict[str, Pid]
    dialogs: dict[str, Dialog] = field(default_factory=dict)

    async def expect_request(self, method: Method) -> Request:
        message = await self.out.next()
        assert isinstance(message, Request) and message.method == method, f"expected {method}, got {message}"
        return message

    async def expect_response(self, status: int) -> Response:
        message = await self.out.next()
        assert isinstance(message, Response) and message.status == status, f"expected {status}, got {message}"
        return message

    def respond(self, request: Request, status: int, *, tag: str = "gwtag", body: bytes = b"",
                headers: list[tuple[str, str]] | None = None) -> Response:
        extra = [("Contact", f"<sip:callee@{self.name}.example:5080;transport=tcp>")] if status < 300 else []
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, to_tag=None if status == 100 else tag,
                                 headers=extra + (headers or []), body=body)
        if request.method == Method.INVITE and 100 < status < 300:
            self.dialogs[request.call_id] = Dialog.from_uas(
                request, tag, contact=parse_name_addr(f"<sip:callee@{self.name}.example:5080;transport=tcp>"))
        self.deliver(response)
        return response

    def deliver(self, message: Request | Response) -> None:
        otp.dispatch(b_leg_key(message.call_id), Inbound(wire(message), self.pid, trio.current_time()))

    def bye(self, invite: Request) -> Request:
        dialog = self.dialogs[invite.call_id]
        dialog.confirm()
        bye = dialog.make_request(Method.BYE)
        self.deliver(bye)
        return bye

    def fail(self, request: Request, reason: str = "connection refused") -> None:
        otp.send(self.replies[request.call_id], GatewayFailed(self.name, request.call_id, reason))


def caller_invite(number: str, *, call_id: str | None = None, contact: bool = True,
                  max_forwards: int = 70) -> Request:
    """Alice's INVITE for `number` with an SDP offer, as it arrives off the wire."""
    sent = make_request(Method.INVITE, f"sip:{number}@10.0.0.9:5060", from_="Alice <sip:alice@10.0.0.1>",
                        to=f"<sip:{number}@10.0.0.9>", sent_by="10.0.0.1:5070", call_id=call_id,
                        contact="<sip:alice@10.0.0.1:5070;transport=tcp>",
                        headers=[("Content-Type", "application/sdp")], body=SDP)
    if not contact:
        sent.headers.remove("Contact")
    sent.headers.set("Max-Forwards", str(max_forwards))
    invite = wire(sent)
    assert isinstance(invite, Request)
    return invite


@dataclass
class Bench:
    nursery: trio.Nursery
    links: dict[str, Link]
    cdrs: list[Any]
    events: list[Any]
    settings: CallSettings = SETTINGS
    exits: dict[Pid, Wire] = field(default_factory=dict)

    def link(self, name: str) -> Link:
        return self.links[name]

    async def call(self, number: str, *, call_id: str | None = None, contact: bool = True,
                   max_forwards: int = 70) -> tuple[Phone, Pid]:
        """The caller sends an INVITE for `number`; the session is started as the dispatcher does."""
        invite = caller_invite(number, call_id=call_id, contact=contact, max_forwards=max_forwards)
        caller_wire = Wire()
        conn = await self.nursery.start(otp.Process.start_link, _caller_link, caller_wire)
        return Phone(invite, conn, caller_wire), await self.start_session(invite, conn)

    async def start_session(self, invite: Request, conn: Pid) -> Pid:
        """Start the session for `invite` from the connection `conn` under "calls", and watch its exit."""
        spec = call_session_spec(invite, conn, trio.current_time(), self.settings)
        pid = await otp.start_child("calls", spec)
        self.exits[pid] = Wire()
        await self.nursery.start(otp.Process.start_link, _watch, pid, self.exits[pid])
        return pid

    def kill_connection(self, phone: Phone) -> None:
        """The caller's connection process exits (the peer closed the TCP connection)."""
        otp.send(phone.conn, _CLOSE)

    async def exited(self, pid: Pid) -> otp.ExitReason:
        """Wait until the session `pid` exits; its exit reason."""
        reason: otp.ExitReason = await self.exits[pid].next()
        return reason

    def steps(self, call_id: str, kind: type[Any] | None = None) -> list[Any]:
        return [s for s in self.cdrs if s.call_id == call_id and (kind is None or isinstance(s, kind))]

    def close(self, call_id: str) -> CdrClose:
        [closed] = self.steps(call_id, CdrClose)
        assert isinstance(closed, CdrClose)
        return closed

    async def flush_events(self) -> list[Any]:
        await otp.sync_notify("events", "flush")
        return [e for e in self.events if e != "flush"]


@asynccontextmanager
async def bench(*, settings: CallSettings = SETTINGS, router: bool = True,
                billing: ChildSpec | None = None, gateways: Sequence[str] = ("gw1", "gw2")) -> AsyncIterator[Bench]:
    """Events, billing, router and calls under one supervisor, plus the caller's and gateways' links.

    `gateways` names the gateways that get a link process (the others in a table are unreachable).
    """
    cdrs: list[Any] = []
    events: list[Any] = []
    children = [
        ChildSpec(id="events", start=partial(otp.EventManager.start_link, name="events")),
        billing or ChildSpec(id="billing", start=partial(BillingRecorder.start_link, cdrs, name="billing")),
    ]
    if router:
        children.append(router_child_spec(TABLE, rng=random.Random(1)))
    children.append(ChildSpec(id="calls", start=partial(otp.DynamicSupervisor.start_link, name="calls"),
                              type=otp.ChildType.SUPERVISOR, shutdown=math.inf))
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(otp.Supervisor.start_link, children, name="top"))
        await otp.add_handler("events", "recorder", EventRecorder, events)
        links = {}
        for name in gateways:
            out, replies = Wire(), dict[str, Pid]()
            pid = await nursery.start(partial(otp.Process.start_link, _gateway_link, out, replies,
                                              name=gateway_name(name)))
            links[name] = Link(name, pid, out, replies)
        yield Bench(nursery, links, cdrs, events, settings)
        nursery.cancel_scope.cancel()


async def answer(link: Link, phone: Phone, invite: Request) -> None:
    """`link` answers its B-leg `invite` with 200, the caller gets the 200 and ACKs, the ACK reaches the gateway."""
    link.respond(invite, 200)
    phone.ack(await phone.expect(200))
    await link.expect_request(Method.ACK)


async def ring_on(b: Bench, phone: Phone, gateway: str, status: int = 180) -> Request:
    """The call reaches `gateway`, which rings (`status`); the caller gets that. Returns the B-leg INVITE."""
    link = b.link(gateway)
    invite = await link.expect_request(Method.INVITE)
    link.respond(invite, status)
    await phone.expect(status)
    return invite


async def answer_on(b: Bench, phone: Phone, gateway: str) -> Request:
    """The call reaches `gateway`, which answers; the caller ACKs. Returns the B-leg INVITE."""
    link = b.link(gateway)
    invite = await link.expect_request(Method.INVITE)
    await answer(link, phone, invite)
    return invite


async def caller_hangs_up(link: Link, phone: Phone) -> Request:
    """The caller sends BYE and gets its 200; the BYE reaches `link`, which answers 200. Returns that BYE."""
    phone.bye()
    await phone.expect(200)
    bye = await link.expect_request(Method.BYE)
    link.respond(bye, 200)
    return bye
