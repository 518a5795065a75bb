"""Helpers shared by the transport tests: raw SIP requests, a recording dispatcher, a peer that reads."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from switchd import otp
from switchd.otp import ChildSpec, Pid
from switchd.sip import Connection, ConnectionClosed, NeedData, Request, Response
from switchd.switch import Admission, Dispatcher, ReplyPath, a_leg_name


def request(method: str = "INVITE", call_id: str = "call-1", *, to_tag: str | None = None, cseq: int = 1,
            body: bytes = b"", uri: str = "sip:service@127.0.0.1:5060", branch: str = "z9hG4bK-1",
            extra: str = "") -> bytes:
    """A well-formed request as a caller (SIPp) would write it."""
    to = "<sip:service@127.0.0.1:5060>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5061;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1:5061>;tag=from-1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@127.0.0.1:5061;transport=tcp>\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def response(status: int = 200, call_id: str = "call-1", *, method: str = "INVITE", cseq: int = 1) -> bytes:
    """A response as a gateway would write it."""
    return (
        f"SIP/2.0 {status} Whatever\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-b1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=b-from\r\n"
        "To: <sip:bob@127.0.0.1>;tag=b-to\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@dataclass
class Recorder:
    """A dispatcher that records what it is handed, in order."""

    seen: list[tuple[Request | Response, Pid, float]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # the source address each came from, in order
    arrived: trio.Event = field(default_factory=trio.Event)

    async def __call__(self, message: Request | Response, conn: Pid, received_at: float, source: str) -> None:
        self.seen.append((message, conn, received_at))
        self.sources.append(source)
        self.arrived.set()
        self.arrived = trio.Event()

    async def wait_for(self, count: int) -> list[Request | Response]:
        while len(self.seen) < count:
            await self.arrived.wait()
        return [m for m, _, _ in self.seen]


class Peer:
    """The far end of a connection: writes bytes, reads whole SIP messages back."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.framer = Connection()
        self.raw = bytearray()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read(self) -> Request | Response | None:
        """The next message, or None when the switch closed the connection."""
        while True:
            event = self.framer.next_event()
            if isinstance(event, Request | Response):
                return event
            if isinstance(event, ConnectionClosed):
                return None
            assert isinstance(event, NeedData), event
            data = await self.stream.receive_some(65_536)
            self.raw += data
            self.framer.receive_data(bytes(data))

    async def read_raw(self, size: int) -> bytes:
        """Exactly `size` raw bytes (for pongs)."""
        out = b""
        while len(out) < size:
            data = await self.stream.receive_some(size - len(out))
            assert data, "closed"
            out += data
        return out

    async def closed(self) -> bool:
        """True once the switch closed its end (all it wrote before is skipped)."""
        while True:
            try:
                data = await self.stream.receive_some(65_536)
            except trio.BrokenResourceError:
                return True
            if not data:
                return True


class HeldStart:
    """A Dispatcher whose admission lets the first INVITE in and refuses the next, and whose admitted
    session's start waits until `release_and_receive`: for "a refusal is never queued behind another
    call's session start", over TCP and UDP alike."""

    def __init__(self) -> None:
        self.release, self.reached = trio.Event(), trio.Event()
        self.got: list[object] = []  # what the admitted call's session received once it ran
        self.admission = Admission(cps=0.001, burst=1)
        self.dispatcher = Dispatcher(session_spec=self._spec, admission=self.admission)

    def _spec(self, invite: Request, conn: ReplyPath, at: float, account: object = None) -> ChildSpec:
        return ChildSpec(id=f"call {invite.call_id}", start=self._session)

    async def _session(self, *, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        await self.release.wait()  # the session's start takes as long as the test says

        async def run() -> None:
            while True:
                self.got.append(await otp.receive())
                self.reached.set()

        await otp.Process.start_link(run, name=a_leg_name("admitted"), task_status=task_status)

    async def release_and_receive(self) -> list[str]:
        """Let the start finish; the methods of the requests its session then received."""
        self.release.set()
        with trio.fail_after(10):
            await self.reached.wait()
        return [m.message.method for m in self.got]  # type: ignore[attr-defined]
