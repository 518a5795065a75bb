"""A test bench for CallSessions: a caller's connection, gateway links, billing and events as processes.

Every process here stands in for a real one under its real registered name, so the session under
test finds them exactly as it finds them in the daemon: the caller's connection process (collects
`Outbound`), one link per gateway (`gateway_name(gw)`, collects `ToGateway`), "billing" (records
the CDR steps), "events" (a real EventManager with a recording handler), "router" (the real
Router) and "calls" (the real DynamicSupervisor). A caller's INVITE goes through the node's real `Dispatcher`
(its checks, admission, then start_child under "calls"), as a connection hands it over. Messages
are put through serialize/parse on the way, so what the session sends is proven to be valid SIP.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import trio

from switchd import otp
from switchd.billing import CdrClose, CdrQueue
from switchd.otp import ChildSpec, GenServer, NoReply, Pid
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
    Admission,
    CallSettings,
    Dispatcher,
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
                        max_call_duration=3600.0, retry_delay=0.25)
"""The settings of a bench's sessions; `bench` gives each bench its own CdrQueue in them."""
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


RESUME = "resume"


@dataclass
class _Recorded:
    queue: CdrQueue
    steps: list[Any]
    paused: list[bool]
    unsettled: int = 0


class BillingRecorder(GenServer[_Recorded]):
    """Stands in for the BillingStore on the node's CdrQueue: records every step, in order, and makes
    it durable at once — unless `paused[0]`, until a RESUME message (what a slow database does)."""

    async def init(self, queue: CdrQueue, steps: list[Any], paused: list[bool]) -> _Recorded:
        queue._attach(otp.self_pid())
        return self._drain(_Recorded(queue, steps, paused))

    async def handle_info(self, msg: object, state: _Recorded) -> NoReply[_Recorded]:
        return NoReply(self._drain(state))  # a Wake from the queue, or RESUME

    def _drain(self, state: _Recorded) -> _Recorded:
        entries = state.queue._take()
        state.steps.extend(entry.step for entry in entries)
        state.unsettled += len(entries)
        if state.unsettled and not state.paused[0]:
            state.queue._settle(state.unsettled)
            state.unsettled = 0
        return state


def recorder_spec(queue: CdrQueue, steps: list[Any], paused: list[bool]) -> ChildSpec:
    """The child spec of the billing stand-in, registered as "billing"."""
    return ChildSpec(id="billing", start=partial(BillingRecorder.start_link, queue, steps, paused, name="billing"))


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

    def answer(self, request: Request, status: int = 200, *, body: bytes = b"") -> Response:
        """Answer a request the switch sent in the caller's dialog (a 2xx to a re-INVITE with our Contact)."""
        response = make_response(request, status, headers=_answer_headers(request, status, body,
                                                                           "<sip:alice@10.0.0.1:5070;transport=tcp>"),
                                 body=body)
        self.send(response)
        return response

    def request(self, method: Method | str, *, body: bytes = b"",
                headers: Sequence[tuple[str, str]] = ()) -> Request:
        """Send a request in the caller's dialog (a re-INVITE, UPDATE, INFO ...), with `body` as SDP."""
        assert self.dialog is not None, "the caller has no dialog yet: ack() the 200 first"
        extra = [("Content-Type", "application/sdp")] if body and not _has_type(headers) else []
        request = self.dialog.make_request(method, body=body, headers=[*extra, *headers])
        self.send(request)
        return request

    def ack_2xx(self, ok: Response, *, body: bytes = b"") -> Request:
        """ACK the 2xx to a re-INVITE the caller sent (its dialog already exists)."""
        assert self.dialog is not None
        ack = self.dialog.make_request(Method.ACK, body=body,
                                       headers=[("Content-Type", "application/sdp")] if body else [])
        assert ack.cseq.seq == ok.cseq.seq
        self.send(ack)
        return ack


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
        response = make_response(request, status, to_tag=None if status == 100 or request.to.tag else tag,
                                 headers=extra + (headers or []), body=body)
        if request.method == Method.INVITE and 100 < status < 300 and request.to.tag is None:
            self.dialogs[request.call_id] = Dialog.from_uas(
                request, tag, contact=parse_name_addr(f"<sip:callee@{self.name}.example:5080;transport=tcp>"))
        self.deliver(response)
        return response

    def deliver(self, message: Request | Response) -> None:
        otp.dispatch(b_leg_key(message.call_id), Inbound(wire(message), self.pid, trio.current_time()))

    def bye(self, invite: Request) -> Request:
        return self.request(invite, Method.BYE)

    def request(self, invite: Request, method: Method | str, *, body: bytes = b"",
                headers: Sequence[tuple[str, str]] = ()) -> Request:
        """The callee sends a request in the dialog its 1xx/2xx to `invite` made (body as SDP)."""
        dialog = self.dialogs[invite.call_id]
        dialog.confirm()
        extra = [("Content-Type", "application/sdp")] if body and not _has_type(headers) else []
        request = dialog.make_request(method, body=body, headers=[*extra, *headers])
        self.deliver(request)
        return request

    def fail(self, request: Request, reason: str = "connection refused") -> None:
        otp.send(self.replies[request.call_id], GatewayFailed(self.name, request.call_id, reason))


def _has_type(headers: Sequence[tuple[str, str]]) -> bool:
    return any(name.lower() == "content-type" for name, _ in headers)


def _answer_headers(request: Request, status: int, body: bytes, contact: str) -> list[tuple[str, str]]:
    headers = [("Contact", contact)] if 200 <= status < 300 and request.method in ("INVITE", "UPDATE") else []
    return headers + ([("Content-Type", "application/sdp")] if body else [])


def caller_invite(number: str, *, call_id: str | None = None, contact: bool = True,
                  max_forwards: int = 70, uri: str | None = None) -> Request:
    """Alice's INVITE for `number` (to Request-URI `uri` if given) with an SDP offer, as it arrives off the wire."""
    uri = uri or f"sip:{number}@10.0.0.9:5060"
    sent = make_request(Method.INVITE, uri, from_="Alice <sip:alice@10.0.0.1>",
                        to=f"<{uri}>", sent_by="10.0.0.1:5070", call_id=call_id,
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
    paused: list[bool] = field(default_factory=lambda: [False])
    admission: Admission = field(default_factory=Admission)

    @property
    def queue(self) -> CdrQueue:
        return self.settings.cdrs

    def pause_billing(self) -> None:
        """From now on the billing stand-in records steps but makes none durable (a hung database)."""
        self.paused[0] = True

    def resume_billing(self) -> None:
        """The billing stand-in makes every step it holds durable, and goes on doing so."""
        self.paused[0] = False
        otp.send("billing", RESUME)

    @property
    def dispatcher(self) -> Dispatcher:
        """The node's dispatch rules, starting this bench's sessions under "calls"."""
        settings = self.settings
        return Dispatcher(session_spec=lambda invite, conn, at, account=None: call_session_spec(
            invite, conn, at, settings, account), admission=self.admission)

    def link(self, name: str) -> Link:
        return self.links[name]

    async def call(self, number: str, *, call_id: str | None = None, contact: bool = True,
                   max_forwards: int = 70, uri: str | None = None) -> tuple[Phone, Pid]:
        """The caller sends an INVITE for `number`; the Dispatcher starts its session, which is returned."""
        phone = await self.dial(number, call_id=call_id, contact=contact, max_forwards=max_forwards, uri=uri)
        return phone, await self._watch(phone.call_id)

    async def dial(self, number: str, *, call_id: str | None = None, contact: bool = True,
                   max_forwards: int = 70, uri: str | None = None) -> Phone:
        """The caller sends an INVITE for `number` (to `uri` if given) through the Dispatcher; its phone."""
        invite = caller_invite(number, call_id=call_id, contact=contact, max_forwards=max_forwards, uri=uri)
        caller_wire = Wire()
        conn = await self.nursery.start(otp.Process.start_link, _caller_link, caller_wire)
        await self.dispatcher(invite, conn, trio.current_time())
        return Phone(invite, conn, caller_wire)

    async def start_session(self, invite: Request, conn: Pid) -> Pid:
        """Hand `invite` from the connection `conn` to the Dispatcher; the session it started, watched."""
        await self.dispatcher(invite, conn, trio.current_time())
        return await self._watch(invite.call_id)

    async def _watch(self, call_id: str) -> Pid:
        pid = otp.whereis(a_leg_name(call_id))
        assert pid is not None, f"no session was started for {call_id}"
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
                billing: Callable[[CdrQueue], ChildSpec] | None = None,
                gateways: Sequence[str] = ("gw1", "gw2")) -> AsyncIterator[Bench]:
    """Events, billing, router and calls under one supervisor, plus the caller's and gateways' links.

    The sessions get a CdrQueue of this bench's own (in `settings`); `billing(queue)` makes the
    child spec of the store that serves it (default: the recording stand-in). `gateways` names the
    gateways that get a link process (the others in a table are unreachable).
    """
    cdrs: list[Any] = []
    events: list[Any] = []
    paused = [False]
    settings = replace(settings, cdrs=CdrQueue())
    children = [
        ChildSpec(id="events", start=partial(otp.EventManager.start_link, name="events")),
        billing(settings.cdrs) if billing is not None else recorder_spec(settings.cdrs, cdrs, paused),
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
        yield Bench(nursery, links, cdrs, events, settings, paused=paused)
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
