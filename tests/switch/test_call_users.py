"""Calls to registered users, and the caller's account on its CDR and its B-leg (CallSession + Registrar).

A real Registrar (in memory) runs beside the call bench; a contact's link is a bench link
registered under the name `contact_gateway` gives that contact, as the one the registrar starts
would be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
import trio.testing

from switchd import otp
from switchd.billing import AccountInfo, CdrClose, CdrOpen, Disposition
from switchd.sip import Dialog, Method, Request, make_response, parse_name_addr, parse_uri
from switchd.switch import REGISTERED, RegistrarSettings, call_session_spec, location_spec
from switchd.switch._bindings import RegisterRequest, RequestedContact
from switchd.switch._registrar import register

from ._call_harness import Bench, Link, Phone, Wire, _caller_link, bench, caller_hangs_up, caller_invite

DOMAIN = "switch.example"
ALICE = AccountInfo("alice", "switchd", "0" * 32, "0" * 64, caller_id="+14155550100", rate_plan="gold")
BOB = AccountInfo("bob", "switchd", "0" * 32, "0" * 64)
PHONE_1 = "contact:tcp:192.0.2.7:5062"
PHONE_2 = "contact:tcp:192.0.2.8:5060"


@asynccontextmanager
async def users_bench() -> AsyncIterator[Bench]:
    settings = RegistrarSettings(realm="switchd", domains=frozenset({DOMAIN}))
    async with bench(gateways=("gw1", "gw2", PHONE_1, PHONE_2)) as b:
        await b.nursery.start(partial(otp.Supervisor.start_link, [location_spec(
            settings, accounts={"alice": ALICE, "bob": BOB})], name="test-location"))
        yield b
        await otp.stop("test-location", "shutdown", timeout=10)


async def bind(user: str, *contacts: tuple[str, int]) -> None:
    """`user` registers `contacts` ((URI, q in thousandths) each) from 192.0.2.7 over TCP."""
    requested = tuple(RequestedContact(uri, parse_uri(uri), None, q) for uri, q in contacts)
    await register(RegisterRequest(user=user, domain=DOMAIN, star=False, contacts=requested, expires=3600,
                                   call_id=f"reg-{user}", cseq=1, transport="tcp", source="192.0.2.7"))


def phone_answers(link: Link, invite: Request) -> None:
    """The phone behind a contact link answers `invite` 200 (the bench's `respond` names gateways' hosts only)."""
    contact = "<sip:bob@192.0.2.7:5062;transport=tcp>"
    link.dialogs[invite.call_id] = Dialog.from_uas(invite, "gwtag", contact=parse_name_addr(contact))
    link.deliver(make_response(invite, 200, to_tag="gwtag", headers=[("Contact", contact)]))


async def test_a_call_to_a_registered_user_rings_its_contact_at_its_contact_uri(
        autojump_clock: trio.testing.MockClock) -> None:
    async with users_bench() as b:
        await bind("bob", ("sip:bob-phone@192.0.2.7:5062;transport=tcp", 1000))
        phone, pid = await b.call("bob", uri=f"sip:bob@{DOMAIN}")
        await phone.expect(100)
        link = b.link(PHONE_1)
        invite = await link.expect_request(Method.INVITE)
        assert str(invite.uri) == "sip:bob-phone@192.0.2.7:5062;transport=tcp"
        phone_answers(link, invite)
        phone.ack(await phone.expect(200))
        await link.expect_request(Method.ACK)
        await caller_hangs_up(link, phone)
        assert await b.exited(pid) == "normal"
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.route_id, closed.gateway) == (Disposition.ANSWERED, REGISTERED, PHONE_1)


async def test_contacts_are_tried_in_q_order_and_a_failing_one_moves_to_the_next(
        autojump_clock: trio.testing.MockClock) -> None:
    async with users_bench() as b:
        await bind("bob", ("sip:bob@192.0.2.8", 500), ("sip:bob@192.0.2.7:5062", 900))
        phone, _ = await b.call("bob", uri=f"sip:bob@{DOMAIN}")
        await phone.expect(100)
        first = await b.link(PHONE_1).expect_request(Method.INVITE)  # q=0.9 first
        b.link(PHONE_1).respond(first, 503)
        second = await b.link(PHONE_2).expect_request(Method.INVITE)
        assert str(second.uri) == "sip:bob@192.0.2.8"


async def test_a_user_with_no_contact_gets_480_and_an_unknown_name_404(autojump_clock: trio.testing.MockClock) -> None:
    async with users_bench() as b:
        for user, status in (("bob", 480), ("nobody", 404)):
            phone, pid = await b.call(user, uri=f"sip:{user}@{DOMAIN}")
            await phone.expect(100)
            await phone.expect(status)
            assert await b.exited(pid) == "normal"
        assert [c.sip_code for c in b.cdrs if isinstance(c, CdrClose)] == [480, 404]
        assert b.link("gw1").out.empty()  # neither went to a gateway


async def test_a_number_of_our_domain_that_is_no_account_is_routed_by_prefix(
        autojump_clock: trio.testing.MockClock) -> None:
    async with users_bench() as b:
        phone, _ = await b.call("442071234567", uri=f"sip:442071234567@{DOMAIN}")
        await phone.expect(100)
        invite = await b.link("gw1").expect_request(Method.INVITE)
        assert invite.uri.user == "442071234567"


async def start(b: Bench, number: str, account: AccountInfo | None) -> tuple[Phone, otp.Pid]:
    """A session started as the dispatcher starts it for a caller that authenticated as `account`."""
    invite = caller_invite(number)
    wire = Wire()
    conn = await b.nursery.start(otp.Process.start_link, _caller_link, wire)
    await otp.start_child("calls", call_session_spec(invite, conn, trio.current_time(), b.settings, account))
    pid = otp.whereis(f"call:a:{invite.call_id}")
    assert pid is not None
    return Phone(invite, conn, wire), pid


async def test_the_callers_account_and_rate_plan_go_into_the_cdr_and_its_caller_id_is_presented(
        autojump_clock: trio.testing.MockClock) -> None:
    async with users_bench() as b:
        phone, _ = await start(b, "442071234567", ALICE)
        await phone.expect(100)
        invite = await b.link("gw1").expect_request(Method.INVITE)
        assert (invite.from_.uri.user, invite.from_.display_name) == ("+14155550100", "Alice")
        [opened] = b.steps(phone.call_id, CdrOpen)
        assert (opened.account, opened.rate_plan) == ("alice", "gold")
        assert opened.caller == "alice"  # what the caller sent, as received


async def test_a_caller_without_an_account_keeps_its_from_and_the_default_plan(
        autojump_clock: trio.testing.MockClock) -> None:
    async with users_bench() as b:
        phone, _ = await start(b, "442071234567", None)
        await phone.expect(100)
        invite = await b.link("gw1").expect_request(Method.INVITE)
        assert str(invite.from_.uri) == "sip:alice@10.0.0.1"
        [opened] = b.steps(phone.call_id, CdrOpen)
        assert (opened.account, opened.rate_plan) == (None, None)
