"""UAC and UAS dialogs (RFC 3261 §12, §13.2.2.4, §15): state, in-dialog requests, matching, CSeq order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.sip import (
    MAGIC_COOKIE,
    Dialog,
    DialogId,
    DialogRole,
    DialogState,
    LocalProtocolError,
    Method,
    RemoteProtocolError,
    Request,
    Response,
    make_request,
    make_response,
    parse_message,
    parse_name_addr,
    serialize,
)

from ._sample_calls import BOB_CONTACT, CALL_ID, request, response

RR = ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]  # as bob's response lists them
SWITCH_CONTACT = parse_name_addr("<sip:switch@10.0.0.9:5060;transport=tcp>")


def uac_dialog(status: int = 180, *, record_routes: list[str] = RR, cseq: int = 1) -> Dialog:
    invite = request(cseq=cseq)
    return Dialog.from_uac(invite, response(invite, status, record_routes=record_routes))


def uas_dialog(*, record_routes: list[str] = RR, state: DialogState = DialogState.EARLY) -> Dialog:
    return Dialog.from_uas(request(record_routes=record_routes), "sw1", contact=SWITCH_CONTACT, state=state)


def on_the_wire(message: Request) -> Request:
    parsed = parse_message(serialize(message))
    assert isinstance(parsed, Request)
    return parsed


def wire_response(message: Response) -> Response:
    parsed = parse_message(serialize(message))
    assert isinstance(parsed, Response)
    return parsed


# -- UAC --------------------------------------------------------------------------------------


def test_a_1xx_with_a_to_tag_creates_an_early_uac_dialog() -> None:
    dialog = uac_dialog(180, cseq=7)
    assert dialog.role is DialogRole.UAC
    assert dialog.early and not dialog.confirmed
    assert dialog.id == DialogId(CALL_ID, "1928301774", "a6c85cf")
    assert (dialog.local_seq, dialog.remote_seq) == (7, None)
    assert str(dialog.remote_target) == "sip:bob@192.0.2.4:5080;transport=tcp"
    assert [str(route.uri) for route in dialog.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]


def test_a_2xx_creates_a_confirmed_uac_dialog() -> None:
    assert uac_dialog(200).confirmed


@pytest.mark.parametrize(("status", "to_tag"), [(100, "a6c85cf"), (180, None), (486, "x")])
def test_a_response_that_creates_no_dialog_is_refused(status: int, to_tag: str | None) -> None:
    invite = request()
    with pytest.raises(LocalProtocolError, match="creates no dialog"):
        Dialog.from_uac(invite, response(invite, status, to_tag=to_tag))


def test_the_2xx_confirms_an_early_dialog_and_recomputes_target_and_route_set() -> None:
    invite = request()
    dialog = Dialog.from_uac(invite, response(invite, 183, contact=None, record_routes=[]))
    assert dialog.remote_target == invite.uri  # no Contact yet: the request URI stays the target
    assert not dialog.route_set
    dialog.receive_response(response(invite, 200, contact="<sip:bob@192.0.2.5>", record_routes=RR))
    assert dialog.confirmed
    assert str(dialog.remote_target) == "sip:bob@192.0.2.5"
    assert [route.uri.host for route in dialog.route_set] == ["p1.example.com", "p2.example.com"]


def test_a_response_from_another_fork_is_not_this_dialogs() -> None:
    invite = request()
    dialog = Dialog.from_uac(invite, response(invite, 180, to_tag="fork1"))
    with pytest.raises(LocalProtocolError, match="'fork2' belongs to another dialog"):
        dialog.receive_response(response(invite, 200, to_tag="fork2"))
    assert dialog.early


def test_a_final_error_ends_an_early_dialog() -> None:
    invite = request()
    dialog = Dialog.from_uac(invite, response(invite, 180))
    dialog.receive_response(response(invite, 486))
    assert dialog.terminated


def test_a_481_to_an_in_dialog_request_ends_the_dialog_a_488_does_not() -> None:
    dialog = uac_dialog(200)
    reinvite = dialog.make_request(Method.INVITE)
    dialog.receive_response(response(reinvite, 488))
    assert dialog.confirmed
    dialog.receive_response(response(dialog.make_request(Method.INFO), 481))
    assert dialog.terminated


def test_a_bye_from_the_uac_goes_to_the_remote_target_through_the_route_set() -> None:
    dialog = uac_dialog(200, cseq=7)
    bye = on_the_wire(dialog.make_request(Method.BYE))
    assert bye.method == Method.BYE
    assert str(bye.uri) == "sip:bob@192.0.2.4:5080;transport=tcp"
    assert [str(route.uri) for route in bye.routes] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert (bye.cseq.seq, bye.cseq.method) == (8, Method.BYE)
    assert (bye.from_.tag, bye.to.tag, bye.call_id) == ("1928301774", "a6c85cf", CALL_ID)
    assert str(bye.from_.uri) == "sip:alice@example.com" and str(bye.to.uri) == "sip:bob@example.com"
    assert len(bye.vias) == 1 and bye.top_via.sent_by == "10.0.0.1:5070" and bye.top_via.transport == "TCP"
    assert (bye.branch or "").startswith(MAGIC_COOKIE) and bye.branch != request().branch
    assert bye.max_forwards == 70
    assert dialog.terminated  # sending BYE ends the dialog


def test_the_ack_for_a_2xx_reuses_the_invite_cseq_number_with_a_new_branch() -> None:
    dialog = uac_dialog(200, cseq=7)
    ack = on_the_wire(dialog.make_request(Method.ACK))
    assert (ack.cseq.seq, ack.cseq.method) == (7, Method.ACK)
    assert ack.branch != request().branch
    assert dialog.local_seq == 7  # an ACK is no new request


def test_a_reinvite_takes_the_next_cseq_carries_our_contact_and_its_ack_follows() -> None:
    dialog = uac_dialog(200, cseq=7)
    reinvite = on_the_wire(dialog.make_request(Method.INVITE, body=b"v=0\r\n",
                                               headers=[("Content-Type", "application/sdp")]))
    assert reinvite.cseq.seq == 8
    assert str(reinvite.contact[0].uri) == "sip:alice@10.0.0.1:5070;transport=tcp"
    assert reinvite.body == b"v=0\r\n" and reinvite.content_type == "application/sdp"
    assert dialog.make_request(Method.ACK).cseq.seq == 8
    assert dialog.make_request(Method.BYE).cseq.seq == 9


def test_a_2xx_to_a_reinvite_refreshes_the_remote_target() -> None:
    dialog = uac_dialog(200)
    reinvite = dialog.make_request(Method.INVITE)
    dialog.receive_response(response(reinvite, 200, contact="<sip:bob@198.51.100.7:5090>"))
    assert str(dialog.remote_target) == "sip:bob@198.51.100.7:5090"
    assert dialog.make_request(Method.BYE).uri == dialog.remote_target


def test_a_strict_router_first_hop_becomes_the_request_uri() -> None:
    dialog = uac_dialog(200, record_routes=["<sip:p2.example.com;lr>", "<sip:p1.example.com>"])
    bye = on_the_wire(dialog.make_request(Method.BYE))
    assert str(bye.uri) == "sip:p1.example.com"
    assert [str(route.uri) for route in bye.routes] == [
        "sip:p2.example.com;lr",
        "sip:bob@192.0.2.4:5080;transport=tcp",
    ]


# -- UAS --------------------------------------------------------------------------------------


def test_a_uas_dialog_takes_its_state_from_the_invite() -> None:
    dialog = uas_dialog()
    assert dialog.role is DialogRole.UAS and dialog.early
    assert dialog.id == DialogId(CALL_ID, "sw1", "1928301774")
    assert (dialog.local_seq, dialog.remote_seq) == (None, 314159)
    assert str(dialog.remote_target) == "sip:alice@10.0.0.1:5070;transport=tcp"
    assert [route.uri.host for route in dialog.route_set] == ["p2.example.com", "p1.example.com"]  # not reversed
    dialog.confirm()
    assert dialog.confirmed


def test_a_bye_from_the_uas_swaps_from_and_to_and_starts_its_own_cseq() -> None:
    dialog = uas_dialog(record_routes=[], state=DialogState.CONFIRMED)
    bye = on_the_wire(dialog.make_request(Method.BYE))
    assert str(bye.uri) == "sip:alice@10.0.0.1:5070;transport=tcp"
    assert bye.routes == []
    assert (bye.from_.tag, str(bye.from_.uri)) == ("sw1", "sip:bob@example.com")
    assert (bye.to.tag, str(bye.to.uri)) == ("1928301774", "sip:alice@example.com")
    assert bye.cseq.seq == 1
    assert bye.top_via.sent_by == "10.0.0.9:5060" and bye.top_via.transport == "TCP"


def test_an_invite_without_a_contact_cannot_create_a_uas_dialog() -> None:
    with pytest.raises(RemoteProtocolError, match="Contact"):
        Dialog.from_uas(request(contact=None), "sw1", contact=SWITCH_CONTACT)


def test_a_lower_cseq_in_the_dialog_is_answered_500_and_leaves_the_state_alone() -> None:
    dialog = uas_dialog(state=DialogState.CONFIRMED)
    late = request(Method.INFO, cseq=314158, to_tag="sw1")
    rejection = dialog.receive_request(late)
    assert rejection is not None
    assert rejection.status == 500
    assert rejection.to.tag == "sw1" and rejection.cseq == late.cseq
    assert dialog.remote_seq == 314159


def test_a_higher_cseq_is_accepted_and_recorded() -> None:
    dialog = uas_dialog(state=DialogState.CONFIRMED)
    assert dialog.receive_request(request(Method.INFO, cseq=314160, to_tag="sw1")) is None
    assert dialog.remote_seq == 314160


def test_the_ack_and_cancel_reuse_the_invite_cseq_and_are_never_out_of_order() -> None:
    dialog = uas_dialog(state=DialogState.CONFIRMED)
    dialog.receive_request(request(Method.INFO, cseq=314170, to_tag="sw1"))
    assert dialog.receive_request(request(Method.ACK, cseq=314159, to_tag="sw1", cseq_method="ACK")) is None
    assert dialog.remote_seq == 314170


def test_a_reinvite_from_the_peer_refreshes_the_remote_target() -> None:
    dialog = uas_dialog(state=DialogState.CONFIRMED)
    reinvite = request(cseq=314160, to_tag="sw1", contact="<sip:alice@10.0.0.77:5070>")
    assert dialog.receive_request(reinvite) is None
    assert str(dialog.remote_target) == "sip:alice@10.0.0.77:5070"


@pytest.mark.parametrize("method", [Method.INVITE, Method.UPDATE])
def test_a_target_refresh_whose_contact_does_not_parse_is_answered_400_and_changes_nothing(method: Method) -> None:
    dialog = uas_dialog(state=DialogState.CONFIRMED)
    target = dialog.remote_target
    bad = request(method, cseq=314160, to_tag="sw1", contact="<sip:alice@10.0.0.77:5070>",
                  cseq_method=str(method))
    bad.headers.set("Contact", "<sip:@@bad>")
    rejection = dialog.receive_request(on_the_wire(bad))
    assert rejection is not None
    assert (rejection.status, rejection.reason, rejection.to.tag) == (400, "Bad Contact", "sw1")
    assert (dialog.remote_target, dialog.remote_seq) == (target, 314159)  # not applied at all


def test_a_bye_from_the_peer_ends_the_dialog() -> None:
    dialog = uas_dialog(state=DialogState.CONFIRMED)
    assert dialog.receive_request(request(Method.BYE, cseq=314160, to_tag="sw1")) is None
    assert dialog.terminated
    with pytest.raises(LocalProtocolError, match="terminated dialog"):
        dialog.make_request(Method.BYE)


def test_a_dialog_matches_requests_with_its_call_id_and_tags_only() -> None:
    dialog = uas_dialog()
    assert dialog.matches(request(Method.BYE, to_tag="sw1"))
    assert not dialog.matches(request(Method.BYE, to_tag="other"))
    assert not dialog.matches(request(Method.BYE, to_tag="sw1", from_tag="other"))
    assert not dialog.matches(request(Method.BYE, to_tag="sw1", call_id="other@x"))
    assert not dialog.matches(request())  # the initial INVITE has no To tag


def test_dialog_ids_of_incoming_requests_and_responses_are_from_our_side() -> None:
    bye = request(Method.BYE, to_tag="sw1")
    assert DialogId.of_request(bye) == uas_dialog().id
    assert DialogId.of_request(request()) is None
    invite = request()
    assert DialogId.of_response(response(invite, 180)) == uac_dialog().id
    assert DialogId.of_response(response(invite, 100, to_tag=None)) is None


def test_cancel_is_not_an_in_dialog_request_and_a_uas_has_no_invite_to_ack() -> None:
    dialog = uas_dialog()
    with pytest.raises(LocalProtocolError, match="make_cancel"):
        dialog.make_request(Method.CANCEL)
    with pytest.raises(LocalProtocolError, match="nothing to ACK"):
        dialog.make_request(Method.ACK)


# -- a B2BUA's two legs -----------------------------------------------------------------------


def test_a_b2bua_maps_a_bye_from_one_leg_to_a_bye_on_the_other() -> None:
    # A-leg: alice's INVITE reached us; B-leg: our INVITE to bob, answered 200.
    a_invite = request()
    a_leg = Dialog.from_uas(a_invite, "swA", contact=SWITCH_CONTACT)
    b_invite = request(branch="z9hG4bKbleg", call_id="bleg@10.0.0.9", from_tag="swB", sent_by="10.0.0.9:5060",
                       uri="sip:bob@192.0.2.4:5080", contact=str(SWITCH_CONTACT))
    b_ok = response(b_invite, 200, contact=BOB_CONTACT, to_tag="bobtag")
    b_leg = Dialog.from_uac(b_invite, b_ok)
    a_ok = make_response(a_invite, 200, to_tag=a_leg.local_tag, headers=[("Contact", str(SWITCH_CONTACT))])
    a_leg.confirm()
    assert a_ok.to.tag == "swA" and a_leg.confirmed and b_leg.confirmed
    b_ack = b_leg.make_request(Method.ACK)
    assert (b_ack.call_id, b_ack.cseq.seq, b_ack.to.tag) == ("bleg@10.0.0.9", b_invite.cseq.seq, "bobtag")

    alice_bye = request(Method.BYE, cseq=314160, to_tag="swA", branch="z9hG4bKabye")
    legs = {a_leg.id: b_leg, b_leg.id: a_leg}
    incoming_id = DialogId.of_request(alice_bye)
    assert incoming_id is not None and a_leg.matches(alice_bye)
    assert a_leg.receive_request(alice_bye) is None
    bye_to_bob = legs[incoming_id].make_request(Method.BYE)
    assert (bye_to_bob.call_id, bye_to_bob.to.tag, bye_to_bob.from_.tag) == ("bleg@10.0.0.9", "bobtag", "swB")
    assert str(bye_to_bob.uri) == "sip:bob@192.0.2.4:5080;transport=tcp"
    assert a_leg.terminated and b_leg.terminated


# -- both ends of one dialog ------------------------------------------------------------------

PEER_METHODS = st.lists(
    st.tuples(st.sampled_from(["uac", "uas"]), st.sampled_from([Method.INFO, Method.INVITE, Method.UPDATE])),
    max_size=10,
)


@given(exchanges=PEER_METHODS)
def test_what_one_end_of_a_dialog_sends_the_other_end_matches_and_accepts(
    exchanges: list[tuple[str, Method]],
) -> None:
    invite = make_request(
        Method.INVITE, "sip:bob@192.0.2.4", from_="<sip:alice@example.com>", to="<sip:bob@example.com>",
        sent_by="10.0.0.1:5070", contact="<sip:alice@10.0.0.1:5070>", cseq=10,
    )
    invite = on_the_wire(invite)
    uas = Dialog.from_uas(invite, "bobtag", contact=parse_name_addr("<sip:bob@192.0.2.4>"),
                          state=DialogState.CONFIRMED)
    ok = wire_response(make_response(invite, 200, to_tag="bobtag", headers=[("Contact", "<sip:bob@192.0.2.4>")]))
    uac = Dialog.from_uac(invite, ok)
    ends = {"uac": (uac, uas), "uas": (uas, uac)}
    assert on_the_wire(uac.make_request(Method.ACK)).cseq.seq == 10
    for side, method in exchanges:
        sender, receiver = ends[side]
        sent = on_the_wire(sender.make_request(method))
        assert receiver.matches(sent)
        assert receiver.receive_request(sent) is None
        assert receiver.remote_seq == sender.local_seq
        if method == Method.INVITE:
            ack = on_the_wire(sender.make_request(Method.ACK))
            assert receiver.matches(ack) and ack.cseq.seq == sent.cseq.seq
    bye = on_the_wire(uas.make_request(Method.BYE))
    assert uac.matches(bye) and uac.receive_request(bye) is None
    assert uac.terminated and uas.terminated
