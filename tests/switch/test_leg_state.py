"""The leg state table: every transition a leg makes is a row, anything else an error."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from switchd.switch._leg_state import (
    TRANSITIONS,
    LegEvent,
    LegRole,
    LegState,
    LegStateError,
    refusal,
    transition,
)

E, S = LegEvent, LegState
CALLER, CALLEE = LegRole.CALLER, LegRole.CALLEE


def walk(role: LegRole, events: Sequence[LegEvent], start: LegState = S.INVITING) -> LegState:
    state = start
    for event in events:
        state = transition(role, state, event)
    return state


def reachable(role: LegRole) -> set[LegState]:
    seen, todo = {S.INVITING}, [S.INVITING]
    while todo:
        for after in TRANSITIONS[role][todo.pop()].values():
            if after not in seen:
                seen.add(after)
                todo.append(after)
    return seen


def test_a_transition_not_in_the_table_is_an_error_naming_role_state_and_event() -> None:
    with pytest.raises(LegStateError, match="caller leg in state inviting: no transition on ack"):
        transition(CALLER, S.INVITING, E.ACK)


@pytest.mark.parametrize(("role", "events", "end"), [
    (CALLER, [E.PROVISIONAL, E.ANSWER, E.ACK, E.BYE], S.HUNG_UP),  # rang, answered, hung up
    (CALLEE, [E.PROVISIONAL, E.PROVISIONAL, E.ANSWER, E.ACK, E.BYE], S.HUNG_UP),
    (CALLEE, [E.GIVE_UP, E.PROVISIONAL, E.REJECT], S.ENDED),  # the CANCEL waited for a 1xx, then 487
    (CALLEE, [E.PROVISIONAL, E.CANCEL, E.ANSWER, E.ACK, E.BYE], S.HUNG_UP),  # a 2xx raced the CANCEL
    (CALLEE, [E.FAIL], S.ENDED),  # Timer B, or the gateway's connection refused
    (CALLER, [E.PROVISIONAL, E.LOST], S.ENDED),
    (CALLER, [E.PROVISIONAL, E.REJECT, E.BYE], S.ENDED),  # the caller's early BYE after our 487
    # in the dialog: a re-INVITE each way, a failed one, an UPDATE, INFO; BYEs crossing
    (CALLER, [E.ANSWER, E.ACK, E.OFFER_IN, E.ANSWER, E.ACK, E.OFFER_OUT, E.REJECT, E.OFFER_OUT, E.ACCEPT,
              E.REQUEST, E.BYE, E.BYE], S.HUNG_UP),
    (CALLEE, [E.ANSWER, E.ACK, E.OFFER_OUT, E.FAIL, E.OFFER_IN, E.REQUEST, E.ANSWER, E.ACK], S.UP),
])
def test_a_leg_goes_through_a_call_by_the_rows(role: LegRole, events: list[LegEvent], end: LegState) -> None:
    assert walk(role, events) is end


def test_only_a_callee_leg_is_cancelled_and_a_caller_leg_fails_only_what_we_sent_on_it() -> None:
    assert not any({E.GIVE_UP, E.CANCEL} & set(TRANSITIONS[CALLER][state]) for state in LegState)
    assert {s for s in LegState if E.FAIL in TRANSITIONS[CALLER][s]} == {S.OFFER_SENT, S.HUNG_UP}
    assert reachable(CALLER) == set(LegState) - {S.CANCEL_PENDING, S.CANCELLING}
    assert reachable(CALLEE) == set(LegState)


def test_an_ended_or_hung_up_leg_never_comes_back() -> None:
    for role in LegRole:
        for state in (S.ENDED, S.HUNG_UP):
            assert set(TRANSITIONS[role][state].values()) <= {state}


def test_requests_are_relayed_only_in_a_dialog_and_offers_only_in_a_confirmed_idle_one() -> None:
    for role in LegRole:
        takes_requests = {s for s in LegState if E.REQUEST in TRANSITIONS[role][s]}
        assert takes_requests == {S.EARLY, S.ANSWERED, S.UP, S.OFFER_SENT, S.OFFER_RECEIVED}
        assert {s for s in LegState if E.OFFER_IN in TRANSITIONS[role][s]} == {S.UP}
        assert {s for s in LegState if E.OFFER_OUT in TRANSITIONS[role][s]} == {S.UP}


@pytest.mark.parametrize(("role", "state", "status"), [
    (CALLER, S.OFFER_SENT, 491),  # glare: ours is pending (RFC 3261 §14.1)
    (CALLEE, S.OFFER_SENT, 491),
    (CALLER, S.ANSWERED, 491),  # an INVITE waits for its ACK
    (CALLER, S.OFFER_RECEIVED, 500),  # theirs is unanswered (§14.2)
    (CALLEE, S.OFFER_RECEIVED, 500),
    (CALLER, S.EARLY, 500),  # the caller's first INVITE is unanswered
    (CALLEE, S.EARLY, 491),  # our first INVITE is unanswered
    (CALLEE, S.CANCELLING, 491),
    (CALLER, S.HUNG_UP, 481),  # after a BYE
    (CALLEE, S.ENDED, 481),
])
def test_an_offer_a_leg_cannot_take_is_refused_as_rfc_3261_says(role: LegRole, state: LegState,
                                                                 status: int) -> None:
    assert E.OFFER_IN not in TRANSITIONS[role][state]
    assert refusal(role, state, E.OFFER_IN) == status


def test_any_other_request_a_leg_cannot_take_gets_481() -> None:
    for role in LegRole:
        for state in (S.INVITING, S.ENDED, S.HUNG_UP):
            assert refusal(role, state, E.REQUEST) == 481
