"""ServerTransactionTable: a UDP endpoint's server transactions absorb, retransmit and expire (plain-float time)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd.sip import (
    Method,
    Request,
    Response,
    ServerTransactionTable,
    TimedOut,
    ToTransactionUser,
    TransactionOutput,
    Transmit,
    make_response,
)

from ._sample_calls import request

T0 = 100.0


def answer(req: Request, status: int) -> Response:
    return make_response(req, status, to_tag=None if status == 100 or req.to.tag else "sw")


def ack_for(invite: Request) -> Request:
    return request(Method.ACK, cseq_method="ACK", to_tag="sw", branch=invite.top_via.branch or "")


def transmits(outputs: list[TransactionOutput]) -> list[Request | Response]:
    return [out.message for out in outputs if isinstance(out, Transmit)]


def drain(table: ServerTransactionTable, until: float) -> list[tuple[float, TransactionOutput]]:
    seen: list[tuple[float, TransactionOutput]] = []
    while (deadline := table.next_deadline) is not None and deadline <= until:
        seen += [(deadline - T0, out) for out in table.handle_timeout(deadline)]
    return seen


def test_a_new_request_is_delivered_and_its_copies_before_an_answer_are_absorbed() -> None:
    table = ServerTransactionTable()
    invite = request()
    assert table.receive(invite, T0) == [ToTransactionUser(invite)]
    assert table.receive(invite, T0 + 0.5) == []
    assert (len(table), table.absorbed) == (1, 1)


def test_a_retransmitted_invite_gets_the_last_provisional_again_never_a_second_delivery() -> None:
    table = ServerTransactionTable()
    invite = request()
    table.receive(invite, T0)
    trying = answer(invite, 100)
    assert table.send_response(trying, T0) == [Transmit(trying)]
    ringing = answer(invite, 180)
    table.send_response(ringing, T0 + 0.1)
    assert table.receive(invite, T0 + 0.5) == [Transmit(ringing)]


def test_a_non_2xx_after_a_provisional_is_retransmitted_until_the_ack_which_is_absorbed() -> None:
    table = ServerTransactionTable()
    invite = request()
    table.receive(invite, T0)
    table.send_response(answer(invite, 100), T0)
    busy = answer(invite, 486)
    assert table.send_response(busy, T0) == [Transmit(busy)]
    got = drain(table, T0 + 2.0)
    assert got == [(0.5, Transmit(busy)), (1.5, Transmit(busy))]
    assert table.receive(ack_for(invite), T0 + 2.0) == []  # absorbed: the TU never sees it
    assert table.receive(invite, T0 + 3.0) == []  # Confirmed: a late copy of the INVITE is absorbed too
    assert drain(table, T0 + 100) == []  # Timer I ends it silently
    assert len(table) == 0


def test_after_a_2xx_a_retransmitted_invite_is_absorbed_for_64_t1_then_forgotten() -> None:
    table = ServerTransactionTable()
    invite = request()
    table.receive(invite, T0)
    ok = answer(invite, 200)
    assert table.send_response(ok, T0 + 1) == [Transmit(ok)]
    assert table.receive(invite, T0 + 2) == []  # Accepted (RFC 6026): not a second call
    assert table.send_response(ok, T0 + 1.5) == [Transmit(ok)]  # the core's 2xx retransmission
    drain(table, T0 + 40)
    assert len(table) == 0
    assert table.receive(invite, T0 + 40) == [ToTransactionUser(invite)]  # long after: new to the table


def test_the_ack_to_a_2xx_has_its_own_branch_and_is_delivered() -> None:
    table = ServerTransactionTable()
    invite = request()
    table.receive(invite, T0)
    table.send_response(answer(invite, 200), T0)
    ack = request(Method.ACK, cseq_method="ACK", to_tag="sw", branch="z9hG4bKack2xx")
    assert table.receive(ack, T0 + 0.1) == [ToTransactionUser(ack)]
    assert table.receive(ack, T0 + 0.2) == [ToTransactionUser(ack)]  # ACKs never make a transaction


def test_a_bye_is_answered_again_from_the_table_for_64_t1() -> None:
    table = ServerTransactionTable()
    bye = request(Method.BYE, to_tag="t", branch="z9hG4bKbye")
    assert table.receive(bye, T0) == [ToTransactionUser(bye)]
    ok = answer(bye, 200)
    assert table.send_response(ok, T0 + 0.01) == [Transmit(ok)]
    assert table.receive(bye, T0 + 0.5) == [Transmit(ok)]  # our 200 was lost: the copy gets it again
    assert drain(table, T0 + 100) == []
    assert len(table) == 0


def test_a_cancel_is_a_transaction_of_its_own_and_each_answer_finds_its_transaction() -> None:
    table = ServerTransactionTable()
    invite = request()
    table.receive(invite, T0)
    table.send_response(answer(invite, 100), T0)
    cancel = request(Method.CANCEL, branch=invite.top_via.branch or "")
    assert table.receive(cancel, T0 + 1) == [ToTransactionUser(cancel)]
    cancelled = answer(cancel, 200)
    terminated = answer(invite, 487)
    assert table.send_response(cancelled, T0 + 1) == [Transmit(cancelled)]
    assert table.send_response(terminated, T0 + 1) == [Transmit(terminated)]
    assert table.receive(cancel, T0 + 1.2) == [Transmit(cancelled)]
    assert table.receive(invite, T0 + 1.2) == [Transmit(terminated)]


def test_a_response_no_transaction_sent_goes_out_as_it_is() -> None:
    table = ServerTransactionTable()
    stray = answer(request(Method.OPTIONS), 200)
    assert table.send_response(stray, T0) == [Transmit(stray)]
    assert len(table) == 0


def test_a_second_final_response_is_a_bug_in_the_tu_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    table = ServerTransactionTable()
    options = request(Method.OPTIONS)
    table.receive(options, T0)
    table.send_response(answer(options, 200), T0)
    with caplog.at_level(logging.WARNING):
        assert table.send_response(answer(options, 500), T0) == []
    assert "response dropped" in caplog.text


def test_beyond_max_transactions_the_oldest_is_evicted() -> None:
    table = ServerTransactionTable(max_transactions=2)
    first, second, third = (request(Method.OPTIONS, branch=f"z9hG4bK{n}") for n in range(3))
    for n, req in enumerate((first, second, third)):
        table.receive(req, T0 + n)
    assert (len(table), table.evicted) == (2, 1)
    assert table.receive(first, T0 + 3) == [ToTransactionUser(first)]  # forgotten: delivered again
    assert table.receive(third, T0 + 3) == []


def test_an_rfc_2543_request_is_keyed_without_a_branch_and_its_answer_finds_it() -> None:
    table = ServerTransactionTable()
    old = request(Method.OPTIONS, branch="1")
    table.receive(old, T0)
    ok = answer(old, 200)
    assert table.send_response(ok, T0) == [Transmit(ok)]
    assert table.receive(old, T0 + 1) == [Transmit(ok)]


def test_timer_h_expires_an_unacknowledged_final() -> None:
    table = ServerTransactionTable()
    invite = request()
    table.receive(invite, T0)
    table.send_response(answer(invite, 503), T0)
    assert drain(table, T0 + 100) == [(32.0, TimedOut("H"))]
    assert len(table) == 0


def test_the_table_drives_many_transactions_each_on_its_own_schedule() -> None:
    table = ServerTransactionTable()
    byes = [request(Method.BYE, to_tag="t", branch=f"z9hG4bK{n}") for n in range(50)]
    for n, bye in enumerate(byes):
        table.receive(bye, T0 + n)
        table.send_response(answer(bye, 200), T0 + n)
    assert table.next_deadline == T0 + 32.0
    drain(table, T0 + 32.0 + 24.5)
    assert len(table) == 25  # those answered at T0+25 .. T0+49 are still within Timer J


STEP = st.one_of(
    st.tuples(st.just("request"), st.sampled_from(["INVITE", "BYE", "OPTIONS", "CANCEL", "ACK"]), st.integers(0, 3)),
    st.tuples(st.just("answer"), st.sampled_from([100, 180, 200, 404, 486, 503]), st.integers(0, 3)),
    st.tuples(st.just("wait"), st.sampled_from([0.1, 0.5, 4.0, 33.0]), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=40))
def test_whatever_happens_the_table_sends_only_what_it_was_given_and_stays_bounded(
    steps: list[tuple[str, object, object]],
) -> None:
    table = ServerTransactionTable(max_transactions=3)
    now = T0
    given_responses: list[Response] = []
    seen: dict[int, Request] = {}
    for kind, what, which in steps:
        assert isinstance(which, int)
        if kind == "wait":
            assert isinstance(what, float)
            now += what
            outputs = table.handle_timeout(now)
        elif kind == "request":
            method = str(what)
            req = request(method, branch=f"z9hG4bK{which}", cseq_method=method,
                          to_tag="sw" if method == "ACK" else None)
            seen[which] = req
            outputs = table.receive(req, now)
            for out in outputs:
                if isinstance(out, ToTransactionUser):
                    assert out.message is req
        else:
            answered = seen.get(which)
            if answered is None or answered.method == Method.ACK:
                continue
            response = answer(answered, int(str(what)))
            given_responses.append(response)
            outputs = table.send_response(response, now)
        for message in transmits(outputs):
            assert message in given_responses
        assert len(table) <= 3
        assert table.next_deadline is None or table.next_deadline >= now or kind != "wait"
