"""INVITE and non-INVITE server transactions over TCP (RFC 3261 §17.2.1, §17.2.2), fake time."""

from __future__ import annotations

import gc

import pytest

from switchd.sip import (
    InviteServerTransaction,
    LocalProtocolError,
    Method,
    NonInviteServerTransaction,
    Request,
    Status,
    Terminated,
    TimedOut,
    TimerConfig,
    TransactionState,
    Transmit,
    TransportFailed,
    make_response,
)

from ._sample_calls import request

T0 = 500.0


def ack_for(invite_status: int = 486) -> tuple[InviteServerTransaction, Request]:
    """An INVITE server transaction that sent `invite_status`, and the ACK for it."""
    invite = request()
    txn = InviteServerTransaction(invite)
    txn.send_response(make_response(invite, invite_status, to_tag="sw1"), T0)
    ack = request(Method.ACK, to_tag="sw1", cseq_method="ACK")
    return txn, ack


# -- INVITE server ----------------------------------------------------------------------------


def test_an_invite_server_transaction_starts_proceeding_with_no_timer() -> None:
    txn = InviteServerTransaction(request())
    assert txn.state is TransactionState.PROCEEDING
    assert txn.next_deadline is None


def test_100_trying_is_sent_when_asked_without_a_to_tag() -> None:
    invite = request(extra=[("Timestamp", "1.5")])
    txn = InviteServerTransaction(invite)
    [transmit] = txn.send_trying(T0)
    assert isinstance(transmit, Transmit)
    assert transmit.message == make_response(invite, Status.TRYING)
    assert transmit.message.to.tag is None
    assert transmit.message.headers.get("Timestamp") == "1.5"
    assert txn.state is TransactionState.PROCEEDING


def test_a_retransmitted_invite_before_any_response_is_absorbed() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    assert txn.receive(invite, T0 + 0.5) == []


def test_a_retransmitted_invite_gets_the_last_provisional_again() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    txn.send_trying(T0)
    ringing = make_response(invite, Status.RINGING, to_tag="sw1")
    assert txn.send_response(ringing, T0 + 1) == [Transmit(ringing)]
    assert txn.receive(invite, T0 + 2) == [Transmit(ringing)]


def test_a_2xx_is_sent_and_terminates_the_transaction_at_once() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    ok = make_response(invite, Status.OK, to_tag="sw1")
    assert txn.send_response(ok, T0) == [Transmit(ok), Terminated()]
    assert txn.terminated
    assert txn.final_response == ok


def test_a_non_2xx_final_arms_timer_h_at_64_t1_waiting_for_the_ack() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    busy = make_response(invite, Status.BUSY_HERE, to_tag="sw1")
    assert txn.send_response(busy, T0) == [Transmit(busy)]
    assert txn.state is TransactionState.COMPLETED
    assert txn.next_deadline == T0 + 32.0


def test_a_retransmitted_invite_after_a_non_2xx_gets_that_final_again() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    busy = make_response(invite, Status.BUSY_HERE, to_tag="sw1")
    txn.send_response(busy, T0)
    assert txn.receive(invite, T0 + 1) == [Transmit(busy)]


def test_the_ack_for_a_non_2xx_is_absorbed_and_ends_the_transaction_timer_i_is_0() -> None:
    txn, ack = ack_for(486)
    outputs = txn.receive(ack, T0 + 0.1)
    assert outputs == [Terminated()]  # nothing for the TU: it never sees this ACK
    assert txn.terminated
    assert txn.next_deadline is None
    assert txn.receive(ack, T0 + 0.2) == []


def test_timer_h_fires_exactly_64_t1_after_the_final_when_no_ack_comes() -> None:
    txn, _ = ack_for(480)
    assert txn.handle_timeout(T0 + 31.9) == []
    assert txn.handle_timeout(T0 + 32.0) == [TimedOut("H"), Terminated()]
    assert txn.terminated


def test_timer_h_follows_t1() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, timers=TimerConfig(t1=1.0, t2=4.0))
    txn.send_response(make_response(invite, 404, to_tag="x"), T0)
    assert txn.next_deadline == T0 + 64.0


def test_an_ack_before_any_final_response_is_not_the_transactions() -> None:
    txn = InviteServerTransaction(request())
    assert txn.receive(request(Method.ACK, cseq_method="ACK"), T0) == []
    assert txn.state is TransactionState.PROCEEDING


def test_a_second_final_response_is_a_bug_in_the_tu() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    txn.send_response(make_response(invite, 486, to_tag="x"), T0)
    with pytest.raises(LocalProtocolError, match="already sent"):
        txn.send_response(make_response(invite, 200, to_tag="x"), T0 + 1)


def test_a_response_after_a_2xx_is_a_bug_in_the_tu() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    txn.send_response(make_response(invite, 200, to_tag="x"), T0)
    with pytest.raises(LocalProtocolError, match="terminated"):
        txn.send_response(make_response(invite, 180, to_tag="x"), T0 + 1)


def test_a_transport_error_on_a_server_transaction_tells_the_tu() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    txn.send_response(make_response(invite, 486, to_tag="x"), T0)
    assert txn.transport_error() == [TransportFailed(), Terminated()]
    assert txn.next_deadline is None


def test_an_invite_server_transaction_serves_only_an_invite() -> None:
    with pytest.raises(LocalProtocolError, match="needs an INVITE"):
        InviteServerTransaction(request(Method.OPTIONS))


# -- non-INVITE server ------------------------------------------------------------------------


def test_a_non_invite_server_transaction_absorbs_retransmissions_until_the_tu_answers() -> None:
    bye = request(Method.BYE, to_tag="sw1")
    txn = NonInviteServerTransaction(bye)
    assert txn.state is TransactionState.TRYING
    assert txn.next_deadline is None
    assert txn.receive(bye, T0) == []


def test_a_non_invite_server_transaction_resends_its_last_provisional() -> None:
    bye = request(Method.BYE, to_tag="sw1")
    txn = NonInviteServerTransaction(bye)
    trying = make_response(bye, Status.TRYING)
    assert txn.send_response(trying, T0) == [Transmit(trying)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.receive(bye, T0 + 1) == [Transmit(trying)]


@pytest.mark.parametrize("provisional_first", [False, True])
def test_a_final_response_ends_a_non_invite_server_transaction_at_once_timer_j_is_0(
    provisional_first: bool,
) -> None:
    cancel = request(Method.CANCEL)
    txn = NonInviteServerTransaction(cancel)
    if provisional_first:
        txn.send_response(make_response(cancel, 100), T0)
    ok = make_response(cancel, Status.OK, to_tag="sw1")
    assert txn.send_response(ok, T0 + 0.1) == [Transmit(ok), Terminated()]
    assert txn.terminated
    assert txn.receive(cancel, T0 + 0.2) == []
    with pytest.raises(LocalProtocolError):
        txn.send_response(ok, T0 + 0.3)


@pytest.mark.parametrize("method", [Method.INVITE, Method.ACK])
def test_a_non_invite_server_transaction_refuses_invite_and_ack(method: Method) -> None:
    with pytest.raises(LocalProtocolError, match="cannot serve"):
        NonInviteServerTransaction(request(method))


def test_a_status_outside_100_to_699_cannot_be_sent() -> None:
    bye = request(Method.BYE, to_tag="sw1")
    txn = NonInviteServerTransaction(bye)
    bogus = make_response(bye, 200)
    bogus.status = 700
    with pytest.raises(LocalProtocolError, match="700"):
        txn.send_response(bogus, T0)


def test_an_invite_server_transaction_forgets_its_provisional_once_a_final_is_sent() -> None:
    invite = request()
    txn = InviteServerTransaction(invite)
    ringing = make_response(invite, Status.RINGING, to_tag="sw1")
    txn.send_response(ringing, T0)
    busy = make_response(invite, Status.BUSY_HERE, to_tag="sw1")
    txn.send_response(busy, T0)
    assert txn.receive(request(), T0 + 0.1) == [Transmit(busy)]  # the final, never the 180 again
    assert all(ringing is not ref for ref in gc.get_referents(txn))  # a held call does not keep its 180
