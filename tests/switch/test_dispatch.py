"""Dispatch: each message goes to its owner by Call-ID, or gets the answer the rules give it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import pytest
import trio

from switchd.otp import ChildSpec, DynamicSupervisor, Pid, Process, join, receive, whereis
from switchd.sip import Request, Response, parse_message
from switchd.switch._admission import Admission
from switchd.switch._dispatch import Dispatcher
from switchd.switch._wire import Inbound, Outbound, a_leg_name, b_leg_key

from .transport_helpers import request, response


@dataclass
class Mailbox:
    """A test process that keeps what it receives (a connection, or a session)."""

    got: list[object] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    async def run(self, group: str | None = None) -> None:
        if group is not None:
            join(group)
        while True:
            self.got.append(await receive())
            self.changed.set()
            self.changed = trio.Event()

    async def next(self, index: int) -> object:
        while len(self.got) <= index:
            await self.changed.wait()
        return self.got[index]


@dataclass
class Node:
    nursery: trio.Nursery
    dispatcher: Dispatcher
    admission: Admission
    conn: Pid
    conn_box: Mailbox
    sessions: dict[str, Mailbox]
    specs: list[tuple[Request, Pid, float]]

    async def answer(self, index: int = 0) -> Response:
        msg = await self.conn_box.next(index)
        assert isinstance(msg, Outbound) and isinstance(msg.message, Response)
        return msg.message


def parse(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


@asynccontextmanager
async def node(*, max_calls: int | None = None, failing_start: bool = False) -> AsyncIterator[Node]:
    sessions: dict[str, Mailbox] = {}
    specs: list[tuple[Request, Pid, float]] = []

    async def start_session(call_id: str, *, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        if failing_start:
            raise RuntimeError("session init failed")
        box = sessions[call_id] = Mailbox()
        await Process.start_link(box.run, name=a_leg_name(call_id), task_status=task_status)

    def session_spec(invite: Request, conn: Pid, received_at: float) -> ChildSpec:  # the contract's shape
        specs.append((invite, conn, received_at))
        return ChildSpec(id=f"call {invite.call_id}", start=partial(start_session, invite.call_id))

    admission = Admission()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(DynamicSupervisor.start_link, max_children=max_calls, name="calls"))
        conn_box = Mailbox()
        conn: Pid = await nursery.start(Process.start_link, conn_box.run)
        yield Node(nursery, Dispatcher(session_spec=session_spec, admission=admission), admission, conn, conn_box,
                   sessions, specs)
        nursery.cancel_scope.cancel()


async def test_a_new_invite_starts_a_session_registered_under_its_call_id() -> None:
    async with node() as n:
        invite = parse(request("INVITE", "c1"))
        await n.dispatcher(invite, n.conn, 7.5)
        assert whereis(a_leg_name("c1")) is not None
        assert n.specs == [(invite, n.conn, 7.5)]
        assert n.conn_box.got == []  # the session answers, not the dispatcher


async def test_ack_and_bye_from_the_caller_go_to_the_session_by_call_id_not_by_uri() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("INVITE", "c1")), n.conn, 1.0)
        ack = parse(request("ACK", "c1", to_tag="t1"))  # R-URI is the switch itself, no Route
        bye = parse(request("BYE", "c1", to_tag="t1", cseq=2))
        await n.dispatcher(ack, n.conn, 2.0)
        await n.dispatcher(bye, n.conn, 2.0)
        box = n.sessions["c1"]
        assert await box.next(1) == Inbound(bye, n.conn, 2.0)
        assert box.got[0] == Inbound(ack, n.conn, 2.0)
        assert len(n.specs) == 1


async def test_responses_and_callee_requests_on_a_b_leg_call_id_go_to_the_sessions_that_joined_it() -> None:
    async with node() as n:
        box = Mailbox()
        await n.nursery.start(Process.start_link, partial(box.run, b_leg_key("b1")))
        ringing = parse_message(response(180, "b1"))
        callee_bye = parse(request("BYE", "b1", to_tag="x"))
        await n.dispatcher(ringing, n.conn, 3.0)
        await n.dispatcher(callee_bye, n.conn, 4.0)
        assert await box.next(1) == Inbound(callee_bye, n.conn, 4.0)
        assert box.got[0] == Inbound(ringing, n.conn, 3.0)


async def test_options_is_answered_200_with_allow() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("OPTIONS", "o1")), n.conn, 1.0)
        answer = await n.answer()
        assert answer.status == 200
        assert answer.headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"]
        assert answer.to.tag is not None


@pytest.mark.parametrize("method", ["BYE", "CANCEL"])
async def test_a_request_for_no_known_dialog_gets_481(method: str) -> None:
    async with node() as n:
        await n.dispatcher(parse(request(method, "gone", to_tag="t")), n.conn, 1.0)
        assert (await n.answer()).status == 481


async def test_a_reinvite_for_no_known_dialog_gets_481_and_starts_nothing() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("INVITE", "gone", to_tag="t")), n.conn, 1.0)
        assert (await n.answer()).status == 481
        assert n.specs == []


async def test_an_ack_for_no_known_dialog_is_dropped_silently() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("ACK", "gone", to_tag="t")), n.conn, 1.0)
        await n.dispatcher(parse(request("OPTIONS", "after")), n.conn, 1.0)
        assert (await n.answer()).call_id == "after"  # the first answer is OPTIONS': the ACK got none


async def test_a_stray_response_is_dropped_silently() -> None:
    async with node() as n:
        await n.dispatcher(parse_message(response(200, "nobody")), n.conn, 1.0)
        await n.dispatcher(parse(request("OPTIONS", "after")), n.conn, 1.0)
        assert (await n.answer()).call_id == "after"


async def test_a_known_method_we_do_not_serve_gets_405_with_allow() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("REGISTER", "r1")), n.conn, 1.0)
        answer = await n.answer()
        assert answer.status == 405
        assert answer.headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS"]


async def test_an_unknown_method_gets_501() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("FROBNICATE", "f1")), n.conn, 1.0)
        assert (await n.answer()).status == 501


async def test_while_draining_a_new_invite_gets_503_with_retry_after_and_starts_nothing() -> None:
    async with node() as n:
        n.admission.begin_drain()
        await n.dispatcher(parse(request("INVITE", "late")), n.conn, 1.0)
        answer = await n.answer()
        assert (answer.status, answer.headers.get("Retry-After")) == (503, "30")
        assert n.specs == []
        assert n.admission.statistics().refused_draining == 1


async def test_while_draining_calls_in_flight_still_get_their_messages() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("INVITE", "c1")), n.conn, 1.0)
        n.admission.begin_drain()
        bye = parse(request("BYE", "c1", to_tag="t", cseq=2))
        await n.dispatcher(bye, n.conn, 2.0)
        assert await n.sessions["c1"].next(0) == Inbound(bye, n.conn, 2.0)


async def test_while_draining_options_gets_503_so_a_load_balancer_takes_the_node_out() -> None:
    async with node() as n:
        n.admission.begin_drain()
        await n.dispatcher(parse(request("OPTIONS", "probe")), n.conn, 1.0)
        assert (await n.answer()).status == 503


async def test_at_max_calls_a_new_invite_gets_503_with_retry_after() -> None:
    async with node(max_calls=1) as n:
        await n.dispatcher(parse(request("INVITE", "c1")), n.conn, 1.0)
        await n.dispatcher(parse(request("INVITE", "c2")), n.conn, 1.0)
        answer = await n.answer()
        assert (answer.status, answer.headers.get("Retry-After"), answer.call_id) == (503, "5", "c2")
        stats = n.admission.statistics()
        assert (stats.admitted, stats.refused_full) == (1, 1)


async def test_a_session_that_fails_to_start_gets_the_caller_a_500() -> None:
    async with node(failing_start=True) as n:
        await n.dispatcher(parse(request("INVITE", "c1")), n.conn, 1.0)
        assert (await n.answer()).status == 500
