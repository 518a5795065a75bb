"""INVITE and non-INVITE client transactions over TCP (RFC 3261 §17.1.1, §17.1.2), fake time."""

from __future__ import annotations

import pytest

from switchd.sip import (
    InviteClientTransaction,
    LocalProtocolError,
    Method,
    NonInviteClientTransaction,
    Terminated,
    TimedOut,
    TimerConfig,
    ToTransactionUser,
    TransactionState,
    Transmit,
    TransportFailed,
)

from ._sample_calls import request, response

T0 = 1000.0  # an arbitrary monotonic time: every deadline below is T0 + the RFC value


# -- INVITE client ----------------------------------------------------------------------------


def test_an_invite_client_transaction_starts_calling_with_timer_b_at_64_t1() -> None:
    txn = InviteClientTransaction(request(), now=T0)
    assert txn.state is TransactionState.CALLING
    assert txn.next_deadline == T0 + 32.0


def test_timer_b_times_out_an_unanswered_invite_exactly_at_its_deadline() -> None:
    txn = InviteClientTransaction(request(), now=T0)
    assert txn.handle_timeout(T0 + 31.999) == []
    assert txn.handle_timeout(T0 + 32.0) == [TimedOut("B"), Terminated()]
    assert txn.terminated
    assert txn.next_deadline is None


def test_timer_b_follows_t1() -> None:
    txn = InviteClientTransaction(request(), now=T0, timers=TimerConfig(t1=0.25))
    assert txn.next_deadline == T0 + 16.0


def test_an_invite_is_never_retransmitted_on_tcp() -> None:
    txn = InviteClientTransaction(request(), now=T0)
    outputs = [out for step in range(65) for out in txn.handle_timeout(T0 + step * 0.5)]
    assert not any(isinstance(out, Transmit) for out in outputs)
    assert outputs == [TimedOut("B"), Terminated()]  # only at T0 + 32


def test_a_provisional_response_goes_to_the_tu_and_stops_timer_b() -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0)
    ringing = response(invite, 180)
    assert txn.receive(ringing, T0 + 1) == [ToTransactionUser(ringing)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.next_deadline is None
    assert txn.handle_timeout(T0 + 100) == []
    again = response(invite, 183)
    assert txn.receive(again, T0 + 2) == [ToTransactionUser(again)]


@pytest.mark.parametrize("provisional_first", [False, True])
def test_a_2xx_goes_to_the_tu_and_terminates_without_an_ack(provisional_first: bool) -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0)
    if provisional_first:
        txn.receive(response(invite, 100, to_tag=None), T0 + 0.1)
    ok = response(invite, 200)
    assert txn.receive(ok, T0 + 3) == [ToTransactionUser(ok), Terminated()]
    assert txn.terminated
    assert txn.ack is None  # the TU's dialog ACKs a 2xx (§13.2.2.4)


@pytest.mark.parametrize("status", [300, 404, 486, 503, 603])
def test_a_non_2xx_final_is_acked_inside_the_transaction_on_the_same_branch(status: int) -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0)
    txn.receive(response(invite, 180), T0 + 1)
    final = response(invite, status, to_tag="failtag")
    outputs = txn.receive(final, T0 + 2)
    ack = txn.ack
    assert ack is not None
    assert outputs == [Transmit(ack), ToTransactionUser(final), Terminated()]  # Timer D = 0 on TCP
    assert ack.method == Method.ACK
    assert ack.branch == invite.branch
    assert ack.to.tag == "failtag"
    assert ack.cseq.seq == invite.cseq.seq


def test_anything_after_termination_is_ignored() -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0)
    txn.receive(response(invite, 486), T0 + 1)
    assert txn.receive(response(invite, 486), T0 + 2) == []
    assert txn.receive(response(invite, 200), T0 + 2) == []
    assert txn.handle_timeout(T0 + 100) == []
    assert txn.transport_error() == []


def test_a_transport_error_tells_the_tu_and_terminates() -> None:
    txn = InviteClientTransaction(request(), now=T0)
    assert txn.transport_error() == [TransportFailed(), Terminated()]
    assert txn.terminated and txn.next_deadline is None


@pytest.mark.parametrize("method", [Method.BYE, Method.ACK, Method.CANCEL])
def test_an_invite_client_transaction_carries_only_an_invite(method: Method) -> None:
    with pytest.raises(LocalProtocolError, match="needs an INVITE"):
        InviteClientTransaction(request(method, to_tag="t"), now=T0)


# -- non-INVITE client ------------------------------------------------------------------------


def test_a_non_invite_client_transaction_starts_trying_with_timer_f_at_64_t1() -> None:
    txn = NonInviteClientTransaction(request(Method.BYE, to_tag="t"), now=T0)
    assert txn.state is TransactionState.TRYING
    assert txn.next_deadline == T0 + 32.0


def test_timer_f_times_out_an_unanswered_request_exactly_at_its_deadline() -> None:
    txn = NonInviteClientTransaction(request(Method.BYE, to_tag="t"), now=T0)
    assert txn.handle_timeout(T0 + 31.5) == []
    assert txn.handle_timeout(T0 + 32.0) == [TimedOut("F"), Terminated()]
    assert txn.terminated


def test_timer_f_keeps_running_after_a_provisional_response() -> None:
    bye = request(Method.BYE, to_tag="t")
    txn = NonInviteClientTransaction(bye, now=T0)
    trying = response(bye, 100)
    assert txn.receive(trying, T0 + 1) == [ToTransactionUser(trying)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.next_deadline == T0 + 32.0
    assert txn.handle_timeout(T0 + 32.0) == [TimedOut("F"), Terminated()]


@pytest.mark.parametrize("status", [200, 481, 500])
def test_a_final_response_goes_to_the_tu_and_terminates_at_once_timer_k_is_0(status: int) -> None:
    cancel = request(Method.CANCEL)
    txn = NonInviteClientTransaction(cancel, now=T0)
    final = response(cancel, status)
    assert txn.receive(final, T0 + 0.2) == [ToTransactionUser(final), Terminated()]
    assert txn.terminated
    assert txn.receive(final, T0 + 0.3) == []  # a retransmitted final is absorbed


@pytest.mark.parametrize("method", [Method.INVITE, Method.ACK])
def test_a_non_invite_client_transaction_refuses_invite_and_ack(method: Method) -> None:
    with pytest.raises(LocalProtocolError, match="cannot carry"):
        NonInviteClientTransaction(request(method), now=T0)
