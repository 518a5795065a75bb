"""The four transactions on an unreliable transport (UDP, ``reliable=False``): RFC 3261 §17 Table 4.

Time is a plain float: every deadline below is T0 plus the value RFC 3261 gives with the default
timers (T1 0.5 s, T2 4 s, T4 5 s), checked exactly.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.sip import (
    InviteClientTransaction,
    InviteServerTransaction,
    LocalProtocolError,
    Method,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Response,
    Terminated,
    TimedOut,
    TimerConfig,
    ToTransactionUser,
    Transaction,
    TransactionOutput,
    TransactionState,
    Transmit,
    make_response,
)

from ._sample_calls import request, response

T0 = 1000.0


def run_timers(txn: Transaction, until: float) -> list[tuple[float, TransactionOutput]]:
    """Call handle_timeout at every deadline up to `until`; each output with the time it came."""
    seen: list[tuple[float, TransactionOutput]] = []
    while (deadline := txn.next_deadline) is not None and deadline <= until:
        seen += [(deadline - T0, out) for out in txn.handle_timeout(deadline)]
    return seen


def answer(txn: InviteServerTransaction | NonInviteServerTransaction, status: int) -> Response:
    return make_response(txn.request, status, to_tag="sw")


# -- INVITE client: Timer A, B, D ------------------------------------------------------------------


def test_timer_a_retransmits_the_invite_at_t1_doubling_until_timer_b_times_out() -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0, reliable=False)
    assert txn.next_deadline == T0 + 0.5
    assert run_timers(txn, T0 + 100) == [
        (0.5, Transmit(invite)), (1.5, Transmit(invite)), (3.5, Transmit(invite)), (7.5, Transmit(invite)),
        (15.5, Transmit(invite)), (31.5, Transmit(invite)), (32.0, TimedOut("B")), (32.0, Terminated()),
    ]


def test_a_provisional_stops_timers_a_and_b() -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0, reliable=False)
    run_timers(txn, T0 + 1.5)  # two retransmissions
    ringing = response(invite, 180)
    assert txn.receive(ringing, T0 + 2) == [ToTransactionUser(ringing)]
    assert txn.state is TransactionState.PROCEEDING
    assert txn.next_deadline is None


def test_a_non_2xx_is_acked_and_timer_d_absorbs_its_retransmissions_for_32s() -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0, reliable=False)
    busy = response(invite, 486)
    first = txn.receive(busy, T0 + 1)
    assert first[1:] == [ToTransactionUser(busy)] and isinstance(first[0], Transmit)
    ack = first[0].message
    assert txn.state is TransactionState.COMPLETED
    assert txn.next_deadline == T0 + 1 + 32.0  # no retransmission timer left: only D
    assert txn.receive(busy, T0 + 5) == [Transmit(ack)]  # the callee did not get our ACK: again
    assert txn.receive(response(invite, 200), T0 + 6) == []  # a 2xx now is nothing of ours
    assert run_timers(txn, T0 + 100) == [(33.0, Terminated())]


def test_a_2xx_ends_the_invite_client_transaction_at_once_even_on_udp() -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0, reliable=False)
    ok = response(invite, 200)
    assert txn.receive(ok, T0 + 0.2) == [ToTransactionUser(ok), Terminated()]


def test_a_late_caller_gets_one_retransmission_and_the_schedule_does_not_shift() -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0, reliable=False)
    assert txn.handle_timeout(T0 + 10.0) == [Transmit(invite)]  # 0.5, 1.5, 3.5, 7.5 missed: one copy
    assert txn.next_deadline == T0 + 15.5


def test_when_timer_b_is_due_with_a_retransmission_only_the_timeout_fires() -> None:
    txn = InviteClientTransaction(request(), now=T0, reliable=False)
    assert txn.handle_timeout(T0 + 40.0) == [TimedOut("B"), Terminated()]


# -- non-INVITE client: Timer E, F, K --------------------------------------------------------------


def test_timer_e_retransmits_at_t1_doubling_up_to_t2_until_timer_f() -> None:
    bye = request(Method.BYE, to_tag="t")
    txn = NonInviteClientTransaction(bye, now=T0, reliable=False)
    got = run_timers(txn, T0 + 100)
    assert [at for at, out in got if out == Transmit(bye)] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert got[-2:] == [(32.0, TimedOut("F")), (32.0, Terminated())]


def test_in_proceeding_timer_e_fires_every_t2() -> None:
    bye = request(Method.BYE, to_tag="t")
    txn = NonInviteClientTransaction(bye, now=T0, reliable=False)
    txn.receive(response(bye, 100, to_tag=None), T0 + 0.2)
    assert txn.state is TransactionState.PROCEEDING
    got = run_timers(txn, T0 + 13)
    assert got == [(0.5, Transmit(bye)), (4.5, Transmit(bye)), (8.5, Transmit(bye)), (12.5, Transmit(bye))]


def test_a_final_stops_timer_e_and_timer_k_absorbs_duplicates_for_t4() -> None:
    bye = request(Method.BYE, to_tag="t")
    txn = NonInviteClientTransaction(bye, now=T0, reliable=False)
    ok = response(bye, 200)
    assert txn.receive(ok, T0 + 1.0) == [ToTransactionUser(ok)]
    assert not txn.awaiting_final  # the TU has its answer: it owes nothing to Completed
    assert txn.receive(ok, T0 + 2.0) == []  # a duplicate: absorbed
    assert run_timers(txn, T0 + 100) == [(6.0, Terminated())]


def test_a_client_transaction_awaits_its_final_until_one_comes() -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0, reliable=False)
    assert txn.awaiting_final
    txn.receive(response(invite, 180), T0 + 1)
    assert txn.awaiting_final
    txn.receive(response(invite, 486), T0 + 2)
    assert not txn.awaiting_final


# -- INVITE server: Accepted (RFC 6026), Timer G, H, I, L -------------------------------------------


def test_a_2xx_moves_the_invite_server_transaction_to_accepted_where_retransmissions_are_absorbed() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=False)
    txn.send_trying(T0)
    ok = answer(txn, 200)
    assert txn.send_response(ok, T0 + 1) == [Transmit(ok)]
    assert txn.state is TransactionState.ACCEPTED
    assert txn.receive(invite, T0 + 1.5) == []  # never a second call, never the 100 again
    assert txn.send_response(ok, T0 + 1.5) == [Transmit(ok)]  # the core's 2xx retransmission goes out
    ack = request(Method.ACK, cseq_method="ACK", to_tag="sw")
    assert txn.receive(ack, T0 + 2) == [ToTransactionUser(ack)]  # RFC 6026: the TU's
    with pytest.raises(LocalProtocolError):
        txn.send_response(answer(txn, 486), T0 + 2)  # a non-2xx after a 2xx went out: a bug in the TU
    assert run_timers(txn, T0 + 100) == [(33.0, Terminated())]  # Timer L: 64*T1


def test_timer_g_retransmits_a_non_2xx_after_a_provisional_doubling_to_t2_until_timer_h() -> None:
    txn = InviteServerTransaction(request(), reliable=False)
    txn.send_trying(T0)
    busy = answer(txn, 486)
    assert txn.send_response(busy, T0) == [Transmit(busy)]
    got = run_timers(txn, T0 + 100)
    assert [at for at, out in got if out == Transmit(busy)] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert got[-2:] == [(32.0, TimedOut("H")), (32.0, Terminated())]


def test_a_final_with_no_provisional_before_it_goes_out_once_per_retransmitted_invite() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=False)
    refused = answer(txn, 503)
    assert txn.send_response(refused, T0) == [Transmit(refused)]
    assert txn.next_deadline == T0 + 32.0  # Timer H only: no Timer G to multiply the answer
    assert txn.receive(invite, T0 + 0.5) == [Transmit(refused)]  # the client's Timer A: answered again
    assert run_timers(txn, T0 + 100) == [(32.0, TimedOut("H")), (32.0, Terminated())]


def test_the_ack_stops_timer_g_and_timer_i_absorbs_ack_retransmissions_for_t4() -> None:
    txn = InviteServerTransaction(request(), reliable=False)
    txn.send_trying(T0)
    txn.send_response(answer(txn, 486), T0)
    run_timers(txn, T0 + 1.5)
    ack = request(Method.ACK, cseq_method="ACK", to_tag="sw")
    assert txn.receive(ack, T0 + 2) == []
    assert txn.state is TransactionState.CONFIRMED
    assert txn.receive(ack, T0 + 3) == []
    assert run_timers(txn, T0 + 100) == [(7.0, Terminated())]


# -- non-INVITE server: Timer J ------------------------------------------------------------------


def test_timer_j_keeps_a_non_invite_server_transaction_for_64_t1_answering_retransmissions() -> None:
    bye = request(Method.BYE, to_tag="t")
    txn = NonInviteServerTransaction(bye, reliable=False)
    ok = make_response(bye, 200)
    assert txn.send_response(ok, T0) == [Transmit(ok)]
    assert txn.receive(bye, T0 + 10) == [Transmit(ok)]
    assert run_timers(txn, T0 + 100) == [(32.0, Terminated())]


def test_the_linger_timers_follow_the_configuration() -> None:
    timers = TimerConfig(t1=0.1, t2=1.0, t4=2.0)
    bye = request(Method.BYE, to_tag="t")
    nist = NonInviteServerTransaction(bye, timers=timers, reliable=False)
    nist.send_response(make_response(bye, 200), T0)
    assert nist.next_deadline == T0 + 6.4  # J = 64*T1
    nict = NonInviteClientTransaction(bye, now=T0, timers=timers, reliable=False)
    nict.receive(response(bye, 200), T0)
    assert nict.next_deadline == T0 + 2.0  # K = T4


# -- properties -------------------------------------------------------------------------------

A_SCHEDULE = {T0 + (2**n - 1) * 0.5 for n in range(1, 8)}  # 0.5, 1.5, 3.5 ... 63.5


@given(st.lists(st.floats(min_value=0.0, max_value=5.0), max_size=30))
def test_however_late_the_caller_timer_a_keeps_its_schedule_and_never_bursts(gaps: list[float]) -> None:
    invite = request()
    txn = InviteClientTransaction(invite, now=T0, reliable=False)
    now = T0
    sent = 0
    for gap in gaps:
        now += gap
        outputs = txn.handle_timeout(now)
        assert outputs.count(Transmit(invite)) <= 1  # one copy per call, however many deadlines passed
        sent += outputs.count(Transmit(invite))
        deadline = txn.next_deadline
        assert deadline is None or deadline in A_SCHEDULE or deadline == T0 + 32.0
    assert sent <= 6  # 0.5 ... 31.5: six retransmissions before Timer B


@given(st.lists(st.sampled_from(["invite", "ack", "wait", "1xx", "486", "200"]), max_size=20))
def test_an_invite_server_transaction_on_udp_sends_nothing_it_was_not_given(steps: list[str]) -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=False)
    given_responses: list[object] = []
    now = T0
    for step in steps:
        outputs: list[TransactionOutput] = []
        if step == "wait":
            now += 3.0
            outputs = txn.handle_timeout(now)
        elif step == "invite":
            outputs = txn.receive(invite, now)
        elif step == "ack":
            outputs = txn.receive(request(Method.ACK, cseq_method="ACK", to_tag="sw"), now)
        else:
            status = {"1xx": 180, "486": 486, "200": 200}[step]
            message = answer(txn, status)
            try:
                outputs = txn.send_response(message, now)
            except LocalProtocolError:
                continue
            given_responses.append(message)
        for out in outputs:
            if isinstance(out, Transmit):
                assert out.message in given_responses
        assert txn.next_deadline is None or txn.next_deadline >= now
