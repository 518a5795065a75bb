"""Uas2xxRetransmitter: the 2xx goes out T1, 2T1, 4T1 ... (capped at T2) apart until the ACK (§13.3.1.4)."""

from __future__ import annotations

import pytest

from switchd.sip import (
    AckTimedOut,
    LocalProtocolError,
    Method,
    Request,
    Response,
    TimerConfig,
    Transmit,
    Uas2xxRetransmitter,
    make_response,
)

from ._sample_calls import CALL_ID, request

T0 = 100.0


def ok(cseq: int = 314159) -> Response:
    return make_response(request(cseq=cseq), 200, to_tag="sw1")


def ack(cseq: int = 314159, call_id: str = CALL_ID) -> Request:
    return request(Method.ACK, cseq=cseq, call_id=call_id, branch="z9hG4bK2xxack", to_tag="sw1", cseq_method="ACK")


def run_to_the_end(retransmitter: Uas2xxRetransmitter) -> list[tuple[float, object]]:
    """Call handle_timeout at each deadline until done; (time, output) for every output."""
    events: list[tuple[float, object]] = []
    while (deadline := retransmitter.next_deadline) is not None:
        events += [(deadline, out) for out in retransmitter.handle_timeout(deadline)]
    return events


def test_the_2xx_is_retransmitted_at_t1_doubling_to_t2_and_given_up_at_64_t1() -> None:
    response = ok()
    events = run_to_the_end(Uas2xxRetransmitter(response, now=T0))
    sent_at = [at - T0 for at, out in events if out == Transmit(response)]
    assert sent_at == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert events[-1] == (T0 + 32.0, AckTimedOut(response))
    assert len(events) == len(sent_at) + 1


def test_the_schedule_follows_the_configured_t1_and_t2() -> None:
    response = ok()
    timers = TimerConfig(t1=1.0, t2=2.0)
    events = run_to_the_end(Uas2xxRetransmitter(response, now=0.0, timers=timers))
    sent_at = [at for at, out in events if isinstance(out, Transmit)]
    assert sent_at[:5] == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert events[-1] == (64.0, AckTimedOut(response))


def test_the_ack_stops_the_retransmissions() -> None:
    retransmitter = Uas2xxRetransmitter(ok(), now=T0)
    assert retransmitter.handle_timeout(T0 + 0.5) == [Transmit(retransmitter.response)]
    assert retransmitter.acknowledge(ack())
    assert retransmitter.done
    assert retransmitter.next_deadline is None
    assert retransmitter.handle_timeout(T0 + 40.0) == []
    assert not retransmitter.acknowledge(ack())  # already done


def test_an_ack_for_another_invite_or_call_does_not_stop_it() -> None:
    retransmitter = Uas2xxRetransmitter(ok(cseq=2), now=T0)
    assert not retransmitter.acknowledge(ack(cseq=1))
    assert not retransmitter.acknowledge(ack(cseq=2, call_id="other@call"))
    assert not retransmitter.acknowledge(request(Method.BYE, cseq=2, to_tag="sw1"))
    assert retransmitter.next_deadline == T0 + 0.5


def test_calling_early_does_nothing_and_calling_late_sends_once_keeping_the_schedule() -> None:
    response = ok()
    retransmitter = Uas2xxRetransmitter(response, now=T0)
    assert retransmitter.handle_timeout(T0 + 0.4) == []
    assert retransmitter.handle_timeout(T0 + 4.0) == [Transmit(response)]  # 0.5, 1.5 and 3.5 were due
    assert retransmitter.next_deadline == T0 + 7.5


def test_stop_ends_it_without_an_ack() -> None:
    retransmitter = Uas2xxRetransmitter(ok(), now=T0)
    retransmitter.stop()
    assert retransmitter.done and retransmitter.next_deadline is None


@pytest.mark.parametrize("status", [180, 486])
def test_only_a_2xx_to_an_invite_is_retransmitted(status: int) -> None:
    with pytest.raises(LocalProtocolError, match=str(status)):
        Uas2xxRetransmitter(make_response(request(), status, to_tag="sw1"), now=T0)
    with pytest.raises(LocalProtocolError, match="BYE"):
        Uas2xxRetransmitter(make_response(request(Method.BYE, to_tag="sw1"), 200), now=T0)
