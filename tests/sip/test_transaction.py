"""TimerConfig, and properties every transaction keeps whatever it is fed (hypothesis)."""

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
    Terminated,
    TimerConfig,
    Transaction,
    TransactionOutput,
    Transmit,
    make_response,
)

from ._sample_calls import request, response

# -- TimerConfig ------------------------------------------------------------------------------


def test_the_default_timers_are_rfc_3261_table_4() -> None:
    timers = TimerConfig()
    assert (timers.t1, timers.t2, timers.t4) == (0.5, 4.0, 5.0)
    assert (timers.timer_b, timers.timer_f, timers.timer_h, timers.ack_timeout) == (32.0, 32.0, 32.0, 32.0)
    assert (timers.timer_a, timers.timer_e, timers.timer_g) == (0.5, 0.5, 0.5)  # each the first interval
    # the UDP values: a transaction on a reliable transport uses 0 for these (test_transaction_udp.py)
    assert (timers.timer_d, timers.timer_i, timers.timer_j, timers.timer_k) == (32.0, 5.0, 32.0, 5.0)
    assert timers.timer_l == 32.0  # RFC 6026 §8.7


def test_the_derived_timers_follow_t1() -> None:
    timers = TimerConfig(t1=0.1, t2=2.0)
    assert timers.timer_b == pytest.approx(6.4)
    assert timers.timer_f == timers.timer_h == timers.ack_timeout == timers.timer_b


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"t1": 0.0}, "t1 must be a positive"),
        ({"t2": -1.0}, "t2 must be a positive"),
        ({"t4": float("nan")}, "t4 must be a positive"),
        ({"t1": 5.0, "t2": 4.0}, "t2 .* must not be shorter than t1"),
    ],
)
def test_a_timer_config_that_makes_no_sense_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TimerConfig(**kwargs)


# -- properties -------------------------------------------------------------------------------

STATUSES = st.sampled_from([100, 180, 183, 200, 202, 302, 404, 486, 487, 500, 503, 603])
# (what, value): a response/request to feed, or a number of seconds to let pass before handle_timeout.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("message"), STATUSES),
        st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=40.0)),
        st.tuples(st.just("ack"), st.just(0)),
    ),
    max_size=12,
)


def drive(txn: Transaction, steps: list[tuple[str, float]]) -> list[list[TransactionOutput]]:
    """Feed `steps` to `txn` (kind-appropriate inputs) and return every list of outputs."""
    now = 0.0
    results: list[list[TransactionOutput]] = []
    for what, value in steps:
        if what == "wait":
            now += value
            results.append(txn.handle_timeout(now))
            continue
        status = int(value)
        match txn:
            case InviteClientTransaction() | NonInviteClientTransaction():
                results.append(txn.receive(response(txn.request, status), now))
            case InviteServerTransaction() | NonInviteServerTransaction():
                if what == "ack":
                    ack = request(Method.ACK, cseq_method="ACK", to_tag="sw")
                    results.append(txn.receive(ack if isinstance(txn, InviteServerTransaction) else txn.request, now))
                    continue
                answer = make_response(txn.request, status, to_tag=txn.request.to.tag or "sw")
                try:
                    results.append(txn.send_response(answer, now))
                except LocalProtocolError:
                    assert txn.state.value in ("accepted", "completed", "confirmed", "terminated")
                    results.append([])
                results.append(txn.receive(txn.request, now))  # a retransmission in between
        deadline = txn.next_deadline
        assert deadline is None or deadline >= now
    return results


def make(kind: str, *, reliable: bool = True) -> Transaction:
    if kind == "ict":
        return InviteClientTransaction(request(), now=0.0, reliable=reliable)
    if kind == "nict":
        return NonInviteClientTransaction(request(Method.BYE, to_tag="t"), now=0.0, reliable=reliable)
    if kind == "ist":
        return InviteServerTransaction(request(), reliable=reliable)
    return NonInviteServerTransaction(request(Method.BYE, to_tag="t"), reliable=reliable)


@given(kind=st.sampled_from(["ict", "nict", "ist", "nist"]), reliable=st.booleans(), steps=STEPS)
def test_a_transaction_terminates_once_last_and_then_stays_silent(
    kind: str, reliable: bool, steps: list[tuple[str, float]],
) -> None:
    txn = make(kind, reliable=reliable)
    results = drive(txn, steps)
    flat = [out for outputs in results for out in outputs]
    assert flat.count(Terminated()) <= 1
    for outputs in results:
        if Terminated() in outputs:
            assert outputs[-1] == Terminated()
    if Terminated() in flat:
        assert txn.terminated and txn.next_deadline is None
        after = flat[flat.index(Terminated()) + 1 :]
        assert after == []
    else:
        assert not txn.terminated


@given(steps=STEPS)
def test_an_invite_client_transaction_transmits_nothing_but_the_ack_to_a_non_2xx(
    steps: list[tuple[str, float]],
) -> None:
    txn = InviteClientTransaction(request(), now=0.0)
    sent = [out.message for outputs in drive(txn, steps) for out in outputs if isinstance(out, Transmit)]
    assert all(getattr(message, "method", None) == Method.ACK for message in sent)
    assert len(sent) <= 1  # Timer D is 0 on TCP: the transaction is gone before a retransmission
    for message in sent:
        assert message.branch == txn.request.branch  # type: ignore[union-attr]
