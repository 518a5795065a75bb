"""Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3, §9.2) and the TransactionTable."""

from __future__ import annotations

import pytest

from switchd.sip import (
    InviteClientTransaction,
    InviteServerTransaction,
    Method,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Request,
    Terminated,
    TimedOut,
    TransactionTable,
    cancel_target_key,
    client_key,
    make_cancel,
    make_response,
    server_key,
)

from ._sample_calls import request, response


def ack_for_non2xx(branch: str = "z9hG4bK776asdhds", sent_by: str = "10.0.0.1:5070") -> Request:
    return request(Method.ACK, branch=branch, sent_by=sent_by, cseq_method="ACK", to_tag="sw1")


# -- keys -------------------------------------------------------------------------------------


def test_a_response_has_the_client_key_of_its_request() -> None:
    invite = request()
    assert client_key(response(invite, 180)) == client_key(invite)
    assert client_key(invite).method == "INVITE"


def test_the_response_to_a_cancel_does_not_match_the_invite_on_the_same_branch() -> None:
    invite = request()
    cancel = make_cancel(invite)
    assert cancel.branch == invite.branch
    assert client_key(response(cancel, 200)) == client_key(cancel)
    assert client_key(response(cancel, 200)) != client_key(invite)


def test_the_ack_to_a_non_2xx_has_the_server_key_of_its_invite() -> None:
    assert server_key(ack_for_non2xx()) == server_key(request())


def test_the_ack_to_a_2xx_has_a_new_branch_so_a_new_key() -> None:
    assert server_key(ack_for_non2xx(branch="z9hG4bKnewack")) != server_key(request())


def test_the_same_branch_from_another_sent_by_is_another_transaction() -> None:
    assert server_key(request(sent_by="10.0.0.2:5070")) != server_key(request())
    assert server_key(request(sent_by="10.0.0.1")) != server_key(request())


def test_sent_by_hosts_compare_case_insensitively() -> None:
    assert server_key(request(sent_by="PC33.Example.com")) == server_key(request(sent_by="pc33.example.com"))


def test_a_cancel_is_its_own_server_transaction_but_targets_its_invite() -> None:
    invite = request()
    cancel = make_cancel(invite)
    assert server_key(cancel) != server_key(invite)
    assert cancel_target_key(cancel) == server_key(invite)


def test_rfc_2543_requests_without_the_magic_cookie_match_on_call_id_from_tag_and_cseq() -> None:
    invite = request(branch="oldbranch1")
    ack = request(Method.ACK, branch="oldbranch1", cseq_method="ACK", to_tag="sw1")
    assert server_key(ack) == server_key(invite)
    assert server_key(request(branch="oldbranch1", call_id="other@x")) != server_key(invite)
    assert server_key(request(branch="oldbranch1", cseq=2)) != server_key(invite)
    assert server_key(request(branch="oldbranch1", from_tag="otherfrom")) != server_key(invite)


# -- the table --------------------------------------------------------------------------------


def test_the_table_routes_a_response_to_its_client_transaction() -> None:
    table = TransactionTable()
    invite = request()
    cancel = make_cancel(invite)
    inv_txn = InviteClientTransaction(invite, now=0.0)
    cancel_txn = NonInviteClientTransaction(cancel, now=1.0)
    table.add(inv_txn)
    table.add(cancel_txn)
    assert table.match_response(response(invite, 487)) is inv_txn
    assert table.match_response(response(cancel, 200)) is cancel_txn
    assert table.match_response(response(request(branch="z9hG4bKother"), 200)) is None


def test_the_table_routes_retransmissions_and_the_non_2xx_ack_to_the_server_transaction() -> None:
    table = TransactionTable()
    invite = request()
    txn = InviteServerTransaction(invite)
    table.add(txn)
    assert table.match_request(request()) is txn
    txn.send_response(make_response(invite, 486, to_tag="sw1"), 0.0)
    assert table.match_request(ack_for_non2xx()) is txn
    assert table.match_request(ack_for_non2xx(branch="z9hG4bK2xxack")) is None
    assert table.match_request(request(Method.BYE, branch="z9hG4bKbye", to_tag="sw1")) is None


def test_the_table_finds_the_invite_a_cancel_cancels() -> None:
    table = TransactionTable()
    invite = request()
    txn = InviteServerTransaction(invite)
    table.add(txn)
    cancel = make_cancel(invite)
    assert table.match_request(cancel) is None  # a new (CANCEL) transaction
    assert table.match_cancel(cancel) is txn
    assert table.match_cancel(make_cancel(request(branch="z9hG4bKnone"))) is None


def test_a_cancel_for_an_answered_invite_finds_nothing() -> None:
    table = TransactionTable()
    invite = request()
    txn = InviteServerTransaction(invite)
    table.add(txn)
    txn.send_response(make_response(invite, 200, to_tag="sw1"), 0.0)
    assert table.match_cancel(make_cancel(invite)) is None  # answer the CANCEL 200, the INVITE is done


def test_the_table_drives_the_earliest_deadline_and_drops_what_terminated() -> None:
    table = TransactionTable()
    invite = InviteClientTransaction(request(), now=0.0)
    bye = NonInviteClientTransaction(request(Method.BYE, branch="z9hG4bKbye", to_tag="t"), now=10.0)
    table.add(invite)
    table.add(bye)
    assert table.next_deadline == 32.0
    assert table.handle_timeout(31.0) == []
    assert table.handle_timeout(32.0) == [(invite, [TimedOut("B"), Terminated()])]
    assert len(table) == 1 and table.next_deadline == 42.0
    assert table.handle_timeout(42.0) == [(bye, [TimedOut("F"), Terminated()])]
    assert len(table) == 0 and table.next_deadline is None


def test_a_terminated_transaction_is_no_match_and_can_be_discarded() -> None:
    table = TransactionTable()
    bye = request(Method.BYE, to_tag="sw1")
    txn = NonInviteServerTransaction(bye)
    table.add(txn)
    txn.send_response(make_response(bye, 200), 0.0)
    assert table.match_request(bye) is None
    table.discard(txn)
    assert len(table) == 0
    table.discard(txn)  # twice is harmless


def test_a_branch_reused_while_its_transaction_lives_is_refused() -> None:
    table = TransactionTable()
    table.add(InviteServerTransaction(request()))
    with pytest.raises(ValueError, match="already live"):
        table.add(InviteServerTransaction(request()))
