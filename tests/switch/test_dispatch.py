"""Dispatch: each message goes to its owner by Call-ID, or gets the answer the rules give it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from switchd.billing import AccountInfo
from switchd.otp import ChildSpec, DynamicSupervisor, Pid, Process, join, receive, whereis
from switchd.sip import Request, Response, parse_message
from switchd.switch._admission import Admission
from switchd.switch._dispatch import Dispatcher
from switchd.switch._wire import Inbound, Outbound, ReplyPath, a_leg_name, b_leg_key

from .transport_helpers import request, response

ALLOW = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "MESSAGE"]


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
        # Not a timing: a guard, so a message that never comes fails the test instead of hanging it
        # (everything here happens within milliseconds, and nothing here sleeps).
        with trio.fail_after(10):
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
    specs: list[tuple[Request, ReplyPath, float]]
    accounts: list[AccountInfo | None]  # the account each session was started with

    async def answer(self, index: int = 0) -> Response:
        msg = await self.conn_box.next(index)
        assert isinstance(msg, Outbound) and isinstance(msg.message, Response)
        return msg.message


def parse(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


@asynccontextmanager
async def node(*, max_calls: int | None = None, failing_start: bool = False,
               admission: Admission | None = None, **options: Any) -> AsyncIterator[Node]:
    """A dispatcher over a real "calls" supervisor whose sessions are mailboxes; `options` go to the Dispatcher."""
    sessions: dict[str, Mailbox] = {}
    specs: list[tuple[Request, ReplyPath, float]] = []
    accounts: list[AccountInfo | None] = []

    async def start_session(call_id: str, *, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        if failing_start:
            raise RuntimeError("session init failed")
        box = sessions[call_id] = Mailbox()
        await Process.start_link(box.run, name=a_leg_name(call_id), task_status=task_status)

    def session_spec(invite: Request, conn: ReplyPath, received_at: float,
                     account: AccountInfo | None = None) -> ChildSpec:  # the contract's shape
        specs.append((invite, conn, received_at))
        accounts.append(account)
        return ChildSpec(id=f"call {invite.call_id}", start=partial(start_session, invite.call_id))

    admission = admission or Admission()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(DynamicSupervisor.start_link, max_children=max_calls, name="calls"))
        conn_box = Mailbox()
        conn: Pid = await nursery.start(Process.start_link, conn_box.run)
        yield Node(nursery, Dispatcher(session_spec=session_spec, admission=admission, **options), admission, conn,
                   conn_box, sessions, specs, accounts)
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
        assert answer.headers.get_all("Allow") == ALLOW
        assert answer.to.tag is not None


@pytest.mark.parametrize("method", ["BYE", "CANCEL", "UPDATE", "INFO", "MESSAGE"])
async def test_a_request_for_no_known_dialog_gets_481(method: str) -> None:
    async with node() as n:
        await n.dispatcher(parse(request(method, "gone", to_tag="t")), n.conn, 1.0)
        assert (await n.answer()).status == 481


@pytest.mark.parametrize("method", ["UPDATE", "INFO", "MESSAGE"])
async def test_a_method_served_only_in_a_dialog_gets_481_outside_one(method: str) -> None:
    async with node() as n:
        await n.dispatcher(parse(request(method, "nodialog")), n.conn, 1.0)
        assert (await n.answer()).status == 481  # RFC 6086 §4.2.2 for INFO; a pager MESSAGE is not served


@pytest.mark.parametrize("method", ["INFO", "UPDATE", "NOTIFY", "REFER", "FROBNICATE"])
async def test_any_request_in_a_call_reaches_its_session_whatever_the_method(method: str) -> None:
    async with node() as n:
        await n.dispatcher(parse(request("INVITE", "c1")), n.conn, 1.0)
        in_dialog = parse(request(method, "c1", to_tag="t", cseq=2))
        await n.dispatcher(in_dialog, n.conn, 2.0)
        assert await n.sessions["c1"].next(0) == Inbound(in_dialog, n.conn, 2.0)


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
        assert answer.headers.get_all("Allow") == ALLOW


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


async def test_an_invite_over_its_sources_rate_gets_503_with_retry_after_at_once_and_starts_nothing(
        autojump_clock: trio.testing.MockClock) -> None:
    async with node(admission=Admission(per_ip_cps=0.5, per_ip_burst=1)) as n:
        await n.dispatcher(parse(request("INVITE", "c1")), n.conn, 1.0, "192.0.2.66")
        await n.dispatcher(parse(request("INVITE", "c2")), n.conn, 1.0, "192.0.2.66")
        answer = await n.answer()
        assert (answer.status, answer.headers.get("Retry-After"), answer.call_id) == (503, "2", "c2")
        assert trio.current_time() == 0.0  # answered at once, never queued
        await n.dispatcher(parse(request("INVITE", "c3")), n.conn, 1.0, "192.0.2.10")
        assert [invite.call_id for invite, _, _ in n.specs] == ["c1", "c3"]
        assert n.admission.statistics().refused_source_rate == 1


async def test_an_overload_logs_its_first_refusal_and_a_summary_not_a_warning_per_503(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with node(max_calls=1) as n:
        for i in range(100):
            await n.dispatcher(parse(request("INVITE", f"c{i}")), n.conn, 1.0)
        assert (await n.answer(98)).status == 503
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("new call refused with 503: at capacity")


async def test_the_error_answers_of_the_dispatcher_are_counted_by_status() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("FROBNICATE", "f1")), n.conn, 1.0)
        await n.dispatcher(parse(request("BYE", "nobody", to_tag="t")), n.conn, 1.0)
        await n.answer(1)
        rejections = n.admission.statistics().rejections
        assert (rejections["sip_501"], rejections["sip_481"], rejections.total) == (1, 1, 2)


# --- refusals: what the switch does not serve is answered here, before any session ----------------

CONTACT = b"Contact: <sip:alice@127.0.0.1:5061;transport=tcp>\r\n"


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "BYE", "CANCEL"])
@pytest.mark.parametrize("uri", ["http://example.com/x", "urn:service:sos", "mailto:bob@example.com"])
async def test_a_request_uri_scheme_we_do_not_serve_gets_416(method: str, uri: str) -> None:
    async with node() as n:
        await n.dispatcher(parse(request(method, "s1", uri=uri)), n.conn, 1.0)
        answer = await n.answer()
        assert (answer.status, answer.reason) == (416, "Unsupported URI Scheme")
        assert n.specs == []


async def test_an_ack_to_a_scheme_we_do_not_serve_is_dropped_silently() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("ACK", "s1", uri="http://example.com/x", to_tag="t")), n.conn, 1.0)
        await n.dispatcher(parse(request("OPTIONS", "after")), n.conn, 1.0)
        assert (await n.answer()).call_id == "after"


@pytest.mark.parametrize(("method", "status"), [("FROBNICATE", 501), ("REGISTER", 405)])
async def test_a_method_we_do_not_implement_is_refused_for_its_method_before_its_scheme(method: str,
                                                                                       status: int) -> None:
    async with node() as n:
        await n.dispatcher(parse(request(method, "f1", uri="http://example.com/x")), n.conn, 1.0)
        assert (await n.answer()).status == status  # RFC 3261 §8.2.1 comes before §8.2.2


async def test_a_request_in_a_call_to_a_scheme_we_do_not_serve_gets_416_and_never_reaches_the_session() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("INVITE", "c1")), n.conn, 1.0)
        await n.dispatcher(parse(request("BYE", "c1", to_tag="t", cseq=2, uri="urn:x:y")), n.conn, 2.0)
        assert (await n.answer()).status == 416
        assert n.sessions["c1"].got == []


@pytest.mark.parametrize("uri", ["tel:+1-415-555-0199", "tel:7042;phone-context=example.com", "sips:b@h"])
async def test_options_to_a_tel_or_sips_uri_is_served(uri: str) -> None:
    async with node() as n:
        await n.dispatcher(parse(request("OPTIONS", "o1", uri=uri)), n.conn, 1.0)
        assert (await n.answer()).status == 200


@pytest.mark.parametrize(("method", "extra", "unsupported"), [
    ("INVITE", "Require: 100rel\r\n", "100rel"),
    ("INVITE", "Proxy-Require: sec-agree\r\nRequire: timer, 100rel\r\n", "timer, 100rel, sec-agree"),
    ("OPTIONS", "Require: foo\r\nRequire: foo\r\n", "foo"),
    ("BYE", "Proxy-Require: bar\r\n", "bar"),
])
async def test_an_option_tag_we_do_not_support_gets_420_listing_it_in_unsupported(
        method: str, extra: str, unsupported: str) -> None:
    async with node() as n:
        await n.dispatcher(parse(request(method, "r1", extra=extra)), n.conn, 1.0)
        answer = await n.answer()
        assert (answer.status, answer.reason) == (420, "Bad Extension")
        assert ", ".join(answer.headers.get_all("Unsupported")) == unsupported
        assert n.specs == []


async def test_require_is_not_checked_on_cancel_or_ack() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("ACK", "a1", to_tag="t", extra="Require: foo\r\n")), n.conn, 1.0)
        await n.dispatcher(parse(request("CANCEL", "c1", extra="Require: foo\r\n")), n.conn, 1.0)
        assert (await n.answer()).status == 481  # the CANCEL's answer, and the only one


async def test_a_require_tag_that_is_not_a_token_is_a_400() -> None:
    async with node() as n:
        await n.dispatcher(parse(request("OPTIONS", "r1", extra="Require: a/b\r\n")), n.conn, 1.0)
        answer = await n.answer()
        assert (answer.status, answer.reason) == (400, "Bad Require")


@pytest.mark.parametrize(("data", "status"), [
    (request("INVITE", "n1").replace(CONTACT, b""), 400),
    (request("INVITE", "n1").replace(CONTACT, b"Contact: <sip:alice@127.0.0.1:99999>\r\n"), 400),
    (request("INVITE", "n1").replace(CONTACT, b"Contact: *\r\n"), 400),
    (request("INVITE", "n1", extra="Record-Route: <sip:p1@example.com;lr\r\n"), 400),
    (request("INVITE", "n1").replace(b"Max-Forwards: 70", b"Max-Forwards: 0"), 483),
    (request("INVITE", "n1", uri="sip:127.0.0.1:5060"), 484),
], ids=["no-contact", "bad-contact-uri", "contact-star", "bad-record-route", "max-forwards-0", "no-number"])
async def test_a_new_invite_the_switch_cannot_take_is_answered_and_starts_nothing(data: bytes, status: int) -> None:
    async with node() as n:
        await n.dispatcher(parse(data), n.conn, 1.0)
        assert (await n.answer()).status == status
        assert n.specs == [] and n.admission.statistics().admitted == 0


@pytest.mark.parametrize(("data", "status", "reason"), [
    (request("INVITE", "x" * 256), 400, "Call-ID Too Long"),
    (request("INVITE", "n1").replace(b"tag=from-1", b"tag=" + b"t" * 129), 400, "From Tag Too Long"),
    (request("INVITE", "n1").replace(b"<sip:alice@", b"<sip:" + b"a" * 256 + b"@"), 400, "From Too Long"),
    (request("INVITE", "n1", uri="sip:" + "5" * 256 + "@127.0.0.1"), 414, "Request-URI Too Long"),
], ids=["call-id", "from-tag", "caller", "number"])
async def test_a_new_invite_with_a_value_too_long_for_its_cdr_is_refused(data: bytes, status: int,
                                                                          reason: str) -> None:
    async with node() as n:
        await n.dispatcher(parse(data), n.conn, 1.0)
        answer = await n.answer()
        assert (answer.status, answer.reason) == (status, reason)
        assert n.specs == []


async def test_a_new_invite_with_values_exactly_as_long_as_their_cdr_columns_starts_a_call() -> None:
    data = request("INVITE", "c" * 255, uri="sip:" + "5" * 255 + "@127.0.0.1").replace(
        b"tag=from-1", b"tag=" + b"t" * 128)
    async with node() as n:
        await n.dispatcher(parse(data), n.conn, 1.0)
        assert len(n.specs) == 1
