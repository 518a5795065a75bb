"""CallSession: requests in the dialogs of an answered call, relayed across the B2BUA either way.

re-INVITE (hold, resume, an offer in the 2xx), UPDATE, INFO, MESSAGE and OPTIONS go from one leg's
dialog into the other's with their bodies; their answers come back; the ACK to a re-INVITE's 2xx
is relayed to the leg that answered. Glare, failures and the end of the call are answered as RFC
3261 §14 says. Every test runs on the MockClock with exact virtual times.
"""

from __future__ import annotations

from datetime import timedelta

import trio
import trio.testing
from trio.testing import MockClock

from switchd.billing import CdrAnswer, Disposition, HangupParty
from switchd.sip import Dialog, Method, Request, Response, make_ack_for_non2xx, make_cancel, make_response

from ._call_harness import Bench, Link, Phone, answer_on, bench, caller_hangs_up, ring_on

HOLD = b"v=0\r\no=alice 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n"
HELD = b"v=0\r\no=bob 1 2 IN IP4 192.0.2.4\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=recvonly\r\n"
RESUME = HOLD.replace(b"a=sendonly", b"a=sendrecv").replace(b"1 2", b"1 3")
RESUMED = HELD.replace(b"a=recvonly", b"a=sendrecv").replace(b"1 2", b"1 3")
DTMF = b"Signal=5\r\nDuration=160\r\n"
OUR_CONTACT = "sip:10.0.0.9:5060;transport=tcp"


async def placed_call(b: Bench) -> tuple[Phone, Link, Request]:
    """A call to 4420 that reached gw1: the phone (its 100 Trying read), gw1, and the B-leg INVITE."""
    phone, _ = await b.call("4420")
    await phone.expect(100)
    gw1 = b.link("gw1")
    return phone, gw1, await gw1.expect_request(Method.INVITE)


async def answered_call(b: Bench, number: str = "4420") -> tuple[Phone, Link, Request]:
    """A call the callee at gw1 answered and the caller ACKed: the phone, gw1, and the B-leg INVITE."""
    phone, _ = await b.call(number)
    await phone.expect(100)
    invite = await answer_on(b, phone, "gw1")
    return phone, b.link("gw1"), invite


async def caller_reinvites(phone: Phone, gw1: Link, body: bytes, answer: bytes) -> tuple[Request, Request, Response]:
    """The caller's re-INVITE reaches the callee, which answers 200 with `answer`; the caller gets the 200.
    Returns the caller's re-INVITE, the callee's, and the 200 the caller got (not ACKed yet)."""
    reinvite = phone.request(Method.INVITE, body=body)
    await phone.expect(100)  # hop by hop, as for the first INVITE
    b_reinvite = await gw1.expect_request(Method.INVITE)
    gw1.respond(b_reinvite, 200, body=answer)
    return reinvite, b_reinvite, await phone.expect(200)


async def test_a_caller_reinvite_is_relayed_with_its_sdp_and_each_leg_acks_its_own_2xx(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        await trio.sleep(10.0)
        reinvite, b_reinvite, ok = await caller_reinvites(phone, gw1, HOLD, HELD)
        # into the callee's dialog: its remote target, its tags, its own CSeq, the SDP untouched
        assert (b_reinvite.call_id, b_reinvite.to.tag, b_reinvite.cseq.seq) == (invite.call_id, "gwtag", 2)
        assert str(b_reinvite.uri) == "sip:callee@gw1.example:5080;transport=tcp"
        assert (b_reinvite.body, b_reinvite.content_type) == (HOLD, "application/sdp")
        assert str(b_reinvite.contact[0].uri) == OUR_CONTACT
        # and back: the caller's CSeq, our Contact, the callee's SDP
        assert (ok.cseq.seq, ok.body, str(ok.contact[0].uri)) == (reinvite.cseq.seq, HELD, OUR_CONTACT)
        assert gw1.out.empty()  # the callee's 2xx is ACKed when the caller ACKs ours
        phone.ack_2xx(ok)
        ack = await gw1.expect_request(Method.ACK)
        assert ack.cseq.seq == b_reinvite.cseq.seq and ack.branch != b_reinvite.branch

        await trio.sleep(20.0)
        _, b_resume, ok = await caller_reinvites(phone, gw1, RESUME, RESUMED)
        assert b_resume.body == RESUME and b_resume.cseq.seq == 3
        phone.ack_2xx(ok)
        await gw1.expect_request(Method.ACK)
        await trio.sleep(5.0)
        await caller_hangs_up(gw1, phone)
        closed = b.close(phone.call_id)
        [answered] = b.steps(phone.call_id, CdrAnswer)
        assert (closed.disposition, closed.reinvites, closed.hold_ms) == (Disposition.ANSWERED, 2, 20_000)
        assert closed.end_at - answered.at == timedelta(seconds=35.0)  # hold time is billed like any other


async def test_a_callee_reinvite_is_relayed_to_the_caller_and_the_ack_carries_the_answer_back(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        assert phone.dialog is not None
        b_reinvite = gw1.request(invite, Method.INVITE)  # no offer: it comes in the 2xx, the answer in the ACK
        await gw1.expect_response(100)
        reinvite = await phone.expect_request(Method.INVITE)
        assert (reinvite.call_id, reinvite.to.tag, reinvite.from_.tag) == (
            phone.call_id, phone.invite.from_.tag, phone.dialog.remote_tag)
        assert str(reinvite.uri) == "sip:alice@10.0.0.1:5070;transport=tcp"  # the caller's Contact
        assert reinvite.cseq.seq == 1 and reinvite.body == b""  # our first request in the caller's dialog
        phone.answer(reinvite, 200, body=RESUME)
        ok = await gw1.expect_response(200)
        assert (ok.cseq.seq, ok.body, str(ok.contact[0].uri)) == (b_reinvite.cseq.seq, RESUME, OUR_CONTACT)
        assert phone.wire.empty()
        gw1.request(invite, Method.ACK, body=RESUMED)
        ack = await phone.expect_request(Method.ACK)
        assert (ack.cseq.seq, ack.body, ack.content_type) == (reinvite.cseq.seq, RESUMED, "application/sdp")
        await caller_hangs_up(gw1, phone)
        assert b.close(phone.call_id).reinvites == 1


async def test_a_callee_holding_the_call_is_timed_on_the_cdr(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        for offer, wait in ((HOLD, 12.5), (RESUME, 3.0)):
            gw1.request(invite, Method.INVITE, body=offer)
            await gw1.expect_response(100)
            phone.answer(await phone.expect_request(Method.INVITE), 200, body=HELD)
            await gw1.expect_response(200)
            gw1.request(invite, Method.ACK)
            await phone.expect_request(Method.ACK)
            await trio.sleep(wait)
        await caller_hangs_up(gw1, phone)
        closed = b.close(phone.call_id)
        assert (closed.reinvites, closed.hold_ms) == (2, 12_500)


async def test_a_failed_reinvite_is_relayed_as_failed_and_the_call_stays_up(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, _ = await answered_call(b)
        reinvite = phone.request(Method.INVITE, body=HOLD)
        await phone.expect(100)
        b_reinvite = await gw1.expect_request(Method.INVITE)
        gw1.respond(b_reinvite, 488)
        assert (await gw1.expect_request(Method.ACK)).branch == b_reinvite.branch  # hop by hop
        refused = await phone.expect(488)
        phone.send(make_ack_for_non2xx(reinvite, refused))  # absorbed by our transaction
        info = phone.request(Method.INFO, body=DTMF, headers=[("Content-Type", "application/dtmf-relay")])
        gw1.respond(await gw1.expect_request(Method.INFO), 200)  # the dialog goes on: no ACK went to gw1
        assert (await phone.expect(200)).cseq.seq == info.cseq.seq
        await caller_hangs_up(gw1, phone)
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.reinvites, closed.hold_ms) == (Disposition.ANSWERED, 1, 0)


async def test_a_reinvite_the_callee_never_answers_is_a_408_to_the_caller_and_the_call_stays_up(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, _ = await answered_call(b)
        start = trio.current_time()
        phone.request(Method.INVITE, body=HOLD)
        await phone.expect(100)
        await gw1.expect_request(Method.INVITE)
        await phone.expect(408)
        assert trio.current_time() == start + 32.0  # Timer B, 64*T1
        phone.request(Method.INVITE, body=RESUME)  # the call is up, and takes the next offer
        await phone.expect(100)
        gw1.respond(await gw1.expect_request(Method.INVITE), 200, body=RESUMED)
        phone.ack_2xx(await phone.expect(200))
        await gw1.expect_request(Method.ACK)
        await caller_hangs_up(gw1, phone)
        assert b.close(phone.call_id).disposition is Disposition.ANSWERED


async def test_glare_gets_491_and_a_second_offer_before_the_first_is_answered_500(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        phone.request(Method.INVITE, body=HOLD)
        await phone.expect(100)
        b_reinvite = await gw1.expect_request(Method.INVITE)
        theirs = gw1.request(invite, Method.INVITE, body=HOLD)  # the callee's crosses ours (RFC 3261 §14.1)
        pending = await gw1.expect_response(491)
        gw1.deliver(make_ack_for_non2xx(theirs, pending))  # absorbed
        phone.request(Method.UPDATE, body=RESUME)  # the caller's second offer before its first is answered
        busy = await phone.expect(500)
        retry_after = busy.retry_after
        assert retry_after is not None and 0 <= retry_after.seconds <= 10  # §14.2
        gw1.respond(b_reinvite, 200, body=HELD)
        phone.ack_2xx(await phone.expect(200))
        await gw1.expect_request(Method.ACK)
        assert phone.wire.empty() and gw1.out.empty()  # neither refused offer went anywhere
        await caller_hangs_up(gw1, phone)
        assert b.close(phone.call_id).reinvites == 1


async def test_a_reinvite_before_the_callers_ack_is_glare(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await placed_call(b)
        gw1.respond(invite, 200)
        ok = await phone.expect(200)
        phone.dialog = Dialog.from_uac(phone.invite, ok)
        phone.request(Method.INVITE, body=HOLD)  # its INVITE's 200 is not ACKed yet
        await phone.expect(491)
        phone.send(phone.dialog.make_request(Method.ACK))  # acks the 200: CSeq of the first INVITE
        await gw1.expect_request(Method.ACK)


async def test_an_update_is_relayed_either_way_with_its_sdp_and_needs_no_ack(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        phone.request(Method.UPDATE, body=HOLD)
        b_update = await gw1.expect_request(Method.UPDATE)
        assert (b_update.body, str(b_update.contact[0].uri)) == (HOLD, OUR_CONTACT)
        gw1.respond(b_update, 200, body=HELD)
        ok = await phone.expect(200)
        assert (ok.body, str(ok.contact[0].uri)) == (HELD, OUR_CONTACT)
        await trio.sleep(7.0)
        gw1.request(invite, Method.UPDATE, body=RESUME)
        update = await phone.expect_request(Method.UPDATE)
        phone.answer(update, 200, body=RESUMED)
        assert (await gw1.expect_response(200)).body == RESUMED
        await trio.testing.wait_all_tasks_blocked()
        assert phone.wire.empty() and gw1.out.empty()  # no ACK either way
        await caller_hangs_up(gw1, phone)
        closed = b.close(phone.call_id)
        assert (closed.reinvites, closed.hold_ms) == (2, 7_000)  # alice held; bob's offer held nothing


async def test_info_message_and_options_are_relayed_both_ways_with_their_answers(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        info = phone.request(Method.INFO, body=DTMF, headers=[("Content-Type", "application/dtmf-relay")])
        b_info = await gw1.expect_request(Method.INFO)
        assert (b_info.body, b_info.content_type, b_info.call_id) == (DTMF, "application/dtmf-relay", invite.call_id)
        gw1.respond(b_info, 200)
        assert (await phone.expect(200)).cseq == info.cseq

        gw1.request(invite, Method.MESSAGE, body=b"hello alice", headers=[("Content-Type", "text/plain")])
        message = await phone.expect_request(Method.MESSAGE)
        assert (message.body, message.content_type) == (b"hello alice", "text/plain")
        phone.answer(message, 202)
        assert (await gw1.expect_response(202)).reason == "Accepted"

        phone.request(Method.OPTIONS)
        options = await gw1.expect_request(Method.OPTIONS)
        gw1.respond(options, 200, body=b"v=0\r\n")
        assert (await phone.expect(200)).body == b"v=0\r\n"
        gw1.request(invite, Method.INFO, body=DTMF, headers=[("Content-Type", "application/dtmf-relay")])
        phone.answer(await phone.expect_request(Method.INFO), 415)  # the caller's answer, relayed as it is
        await gw1.expect_response(415)
        await caller_hangs_up(gw1, phone)
        assert b.close(phone.call_id).reinvites == 0


async def test_info_in_the_early_dialogs_is_relayed_before_the_answer(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await placed_call(b)
        gw1.respond(invite, 183)
        phone.dialog = Dialog.from_uac(phone.invite, await phone.expect(183))
        phone.request(Method.INFO, body=DTMF, headers=[("Content-Type", "application/dtmf-relay")])
        gw1.respond(await gw1.expect_request(Method.INFO), 200)
        await phone.expect(200)
        phone.request(Method.UPDATE, body=HOLD)  # an offer waits for the first INVITE's answer (§14.2)
        await phone.expect(500)


async def test_notify_gets_481_and_refer_and_unknown_methods_501_from_either_side(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        phone.request(Method.NOTIFY, headers=[("Event", "refer")])
        await phone.expect(481)  # no subscription crosses the B2BUA (RFC 6665 §4.1.3)
        phone.request(Method.REFER, headers=[("Refer-To", "<sip:carol@10.0.0.1>")])
        await phone.expect(501)
        gw1.request(invite, Method.NOTIFY, headers=[("Event", "dialog")])
        await gw1.expect_response(481)
        gw1.request(invite, "FROB")
        await gw1.expect_response(501)
        await trio.testing.wait_all_tasks_blocked()
        assert phone.wire.empty() and gw1.out.empty()  # nothing was passed on
        await caller_hangs_up(gw1, phone)


async def test_a_reinvite_after_the_callers_bye_gets_481(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, _ = await answered_call(b)
        assert phone.dialog is not None
        late = Dialog.from_uac(phone.invite, make_response(phone.invite, 200, to_tag=phone.dialog.remote_tag,
                                                           headers=[("Contact", f"<{OUR_CONTACT}>")]))
        phone.bye()
        await phone.expect(200)
        bye = await gw1.expect_request(Method.BYE)  # not answered yet: the session waits for it
        for _ in range(2):
            reinvite = late.make_request(Method.INVITE, body=HOLD)  # CSeq after the BYE's
        phone.send(reinvite)
        await phone.expect(481)
        gw1.respond(bye, 200)
        assert b.close(phone.call_id).reinvites == 0


async def test_in_dialog_requests_follow_the_route_set_and_count_max_forwards_down(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await placed_call(b)
        gw1.respond(invite, 200, headers=[("Record-Route", "<sip:edge.gw1.example;lr>")])
        phone.ack(await phone.expect(200))
        await gw1.expect_request(Method.ACK)
        assert phone.dialog is not None
        for hops in (10, 0):
            request = phone.dialog.make_request(Method.INFO)
            request.headers.set("Max-Forwards", str(hops))
            phone.send(request)
        info = await gw1.expect_request(Method.INFO)
        assert [str(r) for r in info.routes] == ["<sip:edge.gw1.example;lr>"]
        assert str(info.uri) == "sip:callee@gw1.example:5080;transport=tcp" and info.max_forwards == 9
        await phone.expect(483)  # the one with no hops left
        gw1.respond(info, 200)
        await phone.expect(200)


async def test_a_request_out_of_cseq_order_gets_500(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, _ = await answered_call(b)
        first = phone.request(Method.INFO)
        gw1.respond(await gw1.expect_request(Method.INFO), 200)
        await phone.expect(200)
        assert phone.dialog is not None
        stale = phone.dialog.make_request(Method.INFO)
        stale.headers.set("CSeq", f"{first.cseq.seq - 1} INFO")
        phone.send(stale)
        assert (await phone.expect(500)).reason == "CSeq Out of Order"


async def test_a_relayed_reinvite_2xx_the_caller_never_acks_hangs_up_both_legs(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, _ = await answered_call(b)
        start = trio.current_time()
        await caller_reinvites(phone, gw1, HOLD, HELD)
        for _ in range(2):
            await phone.expect(200)  # retransmitted: T1, then 2*T1 (RFC 3261 §13.3.1.4)
        while not isinstance(bye := await phone.wire.next(), Request):
            assert isinstance(bye, Response) and bye.status == 200
        assert bye.method == Method.BYE and trio.current_time() == start + 32.0
        ack = await gw1.expect_request(Method.ACK)  # the callee's 2xx is ACKed before its BYE
        gw1.respond(await gw1.expect_request(Method.BYE), 200)
        phone.answer(bye)
        assert ack.body == b""
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.SWITCH, "ack_timeout")


async def test_a_481_from_the_callee_to_a_relayed_request_ends_the_call(autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, _ = await answered_call(b)
        phone.request(Method.INFO, body=DTMF, headers=[("Content-Type", "application/dtmf-relay")])
        gw1.respond(await gw1.expect_request(Method.INFO), 481)  # the callee has no such dialog any more
        await phone.expect(481)
        phone.answer(await phone.expect_request(Method.BYE))
        await trio.testing.wait_all_tasks_blocked()
        assert gw1.out.empty()  # no BYE into a dialog its far end no longer has
        closed = b.close(phone.call_id)
        assert (closed.disposition, closed.hangup_by, closed.hangup_cause) == (
            Disposition.ANSWERED, HangupParty.CALLEE, "dialog_gone")


async def test_a_cancel_with_a_to_tag_of_its_own_is_answered_and_cancels_the_call(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, pid = await b.call("4420")
        await phone.expect(100)
        gw1 = b.link("gw1")
        invite = await ring_on(b, phone, "gw1")
        cancel = make_cancel(phone.invite)
        cancel.headers.set("To", str(phone.invite.to.with_tag("bogus")))  # a broken caller's
        phone.send(cancel)
        assert (await phone.expect(200)).to.tag == "bogus"
        await phone.expect(487)
        gw1.respond(await gw1.expect_request(Method.CANCEL), 200)
        gw1.respond(invite, 487)
        assert await b.exited(pid) == "normal"
        assert b.close(phone.call_id).hangup_cause == "cancel"


async def test_a_reinvite_with_a_contact_that_does_not_parse_gets_400_and_the_call_goes_on(
        autojump_clock: MockClock) -> None:
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        assert phone.dialog is not None
        bad = phone.dialog.make_request(Method.INVITE, body=HOLD, headers=[("Content-Type", "application/sdp")])
        bad.headers.set("Contact", "<sip:@@bad>")
        phone.send(bad)
        assert (await phone.expect(400)).reason == "Bad Contact"
        theirs = gw1.dialogs[invite.call_id].make_request(Method.UPDATE, body=HOLD,
                                                          headers=[("Content-Type", "application/sdp")])
        theirs.headers.set("Contact", "<sip:@@bad>")
        gw1.deliver(theirs)
        await gw1.expect_response(400)
        await caller_hangs_up(gw1, phone)  # nothing was relayed, nothing crashed
        closed = b.close(phone.call_id)
        assert (closed.hangup_cause, closed.reinvites) == ("bye", 0)


async def test_a_2xx_of_another_fork_after_the_call_is_up_is_acked_and_hung_up_and_the_call_goes_on(
        autojump_clock: MockClock) -> None:
    # Once the caller ACKed, the call holds only the dialog identity of its INVITEs (release_setup):
    # enough to make the other fork's dialog, ACK it and BYE it.
    async with bench() as b:
        phone, gw1, invite = await answered_call(b)
        gw1.respond(invite, 200, tag="fork2")
        ack = await gw1.expect_request(Method.ACK)
        bye = await gw1.expect_request(Method.BYE)
        assert (ack.to.tag, bye.to.tag, bye.call_id) == ("fork2", "fork2", invite.call_id)
        assert str(bye.uri) == "sip:callee@gw1.example:5080;transport=tcp"
        gw1.respond(bye, 200)
        await trio.sleep(10.0)
        await caller_hangs_up(gw1, phone)  # the answered dialog was never touched
