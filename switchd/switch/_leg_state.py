"""The state of one leg of a call, and the one table of what may happen to it.

Strategy (in the spirit of h11's ``_state.py``): every transition a leg can make is a row of
`_ROWS` below; `Leg.fire(event)` looks its next state up in `TRANSITIONS` and raises
`LegStateError` for anything that is not a row. A CallSession never keeps a flag beside a leg's
state: "may a CANCEL go", "is its 2xx ACKed", "is an offer in progress" are all read off it.

A call has two legs at a time, each one SIP dialog seen from our side of the B2BUA:

* the **caller** leg (A): the caller's INVITE, which we answer as its UAS;
* a **callee** leg (B): one attempt through one gateway, whose INVITE we send as its UAC.

Events are what went by on that leg, in whichever direction the leg's role implies (a
PROVISIONAL is a 1xx we sent on the caller leg, one we received on a callee leg); an offer
exchange names its direction in its states (OFFER_SENT, OFFER_RECEIVED) and its first event
(OFFER_IN, OFFER_OUT). Relaying a request in the dialog is a row like any other: a re-INVITE or
UPDATE takes the leg it came in on from UP to OFFER_RECEIVED and the other leg from UP to
OFFER_SENT; INFO, MESSAGE and OPTIONS are a REQUEST, which leaves both legs where they are.

A request that arrives in a state with no row for it is not an error of ours but of the peer (or
a race): `refusal` says what it is answered — 491 when our own INVITE or offer is pending on that
dialog (glare, RFC 3261 §14.1; RFC 3311 §5.2), 500 with Retry-After when the peer's previous one
is not answered yet (§14.2), 481 when the leg has no dialog to take it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from ._errors import SwitchError

__all__ = ["TRANSITIONS", "LegEvent", "LegRole", "LegState", "LegStateError", "refusal", "transition"]


class LegRole(StrEnum):
    """Which side of the B2BUA a leg is: the caller's dialog (we are its UAS) or a callee's (its UAC)."""

    CALLER = "caller"
    CALLEE = "callee"


class LegState(StrEnum):
    """Where a leg is; the table below says how it gets there."""

    INVITING = "inviting"  # the dialog-creating INVITE has no 1xx with a dialog yet (the caller's: only 100 sent)
    EARLY = "early"  # a 1xx went by (a CANCEL may go now, §9.1)
    CANCEL_PENDING = "cancel_pending"  # callee: given up before any 1xx; its CANCEL waits for one (§9.1)
    CANCELLING = "cancelling"  # callee: the CANCEL went out; the INVITE's final answer is due
    ANSWERED = "answered"  # a 2xx to an INVITE of the leg went by; its ACK is due
    UP = "up"  # the dialog is confirmed and nothing is pending on it
    OFFER_SENT = "offer_sent"  # we sent a re-INVITE or UPDATE on the leg; its final answer is due
    OFFER_RECEIVED = "offer_received"  # the leg sent us one; our final answer is due
    ENDED = "ended"  # the dialog-creating INVITE failed: a final error, a timeout, a lost transport
    HUNG_UP = "hung_up"  # a BYE went by, or the connection or dialog under the leg is gone


class LegEvent(StrEnum):
    """What can happen on a leg (the direction follows from the role and the state)."""

    PROVISIONAL = "provisional"  # a 1xx to the dialog-creating INVITE
    ANSWER = "answer"  # a 2xx to an INVITE of the leg (the first or a re-INVITE)
    ACCEPT = "accept"  # a 2xx to an UPDATE of the leg: the offer/answer is done, no ACK
    REJECT = "reject"  # a final error (300-699) to the leg's pending INVITE or UPDATE
    FAIL = "fail"  # no final answer will come: Timer B/F, a transport failure, an answer we cannot use
    GIVE_UP = "give_up"  # callee: we want to cancel before any 1xx came
    CANCEL = "cancel"  # callee: a CANCEL went out
    ACK = "ack"  # the ACK to the leg's 2xx (received from the answerer's peer, sent to the answerer)
    OFFER_IN = "offer_in"  # a re-INVITE or UPDATE arrived on the leg
    OFFER_OUT = "offer_out"  # we sent one on the leg
    REQUEST = "request"  # INFO, MESSAGE or OPTIONS passed through the dialog, either way
    BYE = "bye"  # a BYE went by, either way
    LOST = "lost"  # the connection under the leg, or its dialog at the far end (a 481), is gone


class LegStateError(SwitchError):
    """A leg was asked to make a transition its table does not have: a bug in the session."""


_S, _E = LegState, LegEvent
_A = frozenset({LegRole.CALLER})
_B = frozenset({LegRole.CALLEE})
_AB = _A | _B

# Every transition, one row each: (roles, state, event, next state). Read it top to bottom as a
# call goes: set-up, answer, the dialog's life, its end.
_ROWS: tuple[tuple[frozenset[LegRole], LegState, LegEvent, LegState], ...] = (
    # -- set-up: the dialog-creating INVITE ------------------------------------------------------
    (_AB, _S.INVITING, _E.PROVISIONAL, _S.EARLY),
    (_AB, _S.INVITING, _E.ANSWER, _S.ANSWERED),
    (_AB, _S.INVITING, _E.REJECT, _S.ENDED),
    (_B, _S.INVITING, _E.FAIL, _S.ENDED),
    (_A, _S.INVITING, _E.LOST, _S.ENDED),
    (_B, _S.INVITING, _E.GIVE_UP, _S.CANCEL_PENDING),
    (_B, _S.INVITING, _E.CANCEL, _S.CANCELLING),  # only a dying session's best effort breaks §9.1
    (_AB, _S.EARLY, _E.PROVISIONAL, _S.EARLY),
    (_AB, _S.EARLY, _E.ANSWER, _S.ANSWERED),
    (_AB, _S.EARLY, _E.REJECT, _S.ENDED),
    (_B, _S.EARLY, _E.FAIL, _S.ENDED),
    (_A, _S.EARLY, _E.LOST, _S.ENDED),
    (_B, _S.EARLY, _E.CANCEL, _S.CANCELLING),
    (_AB, _S.EARLY, _E.REQUEST, _S.EARLY),  # INFO in the early dialogs, relayed
    (_B, _S.CANCEL_PENDING, _E.PROVISIONAL, _S.CANCELLING),  # the CANCEL held for this 1xx goes now
    (_B, _S.CANCEL_PENDING, _E.GIVE_UP, _S.CANCEL_PENDING),
    (_B, _S.CANCEL_PENDING, _E.CANCEL, _S.CANCELLING),
    (_B, _S.CANCEL_PENDING, _E.ANSWER, _S.ANSWERED),  # answered before any 1xx: ACKed, then BYEd
    (_B, _S.CANCEL_PENDING, _E.REJECT, _S.ENDED),
    (_B, _S.CANCEL_PENDING, _E.FAIL, _S.ENDED),
    (_B, _S.CANCELLING, _E.PROVISIONAL, _S.CANCELLING),
    (_B, _S.CANCELLING, _E.ANSWER, _S.ANSWERED),  # the 2xx raced our CANCEL: ACKed, then BYEd
    (_B, _S.CANCELLING, _E.REJECT, _S.ENDED),  # the 487 (absorbed by the transaction)
    (_B, _S.CANCELLING, _E.FAIL, _S.ENDED),
    # -- the answer and its ACK (the first INVITE's, or a re-INVITE's) --------------------------
    (_AB, _S.ANSWERED, _E.ACK, _S.UP),
    (_AB, _S.ANSWERED, _E.REQUEST, _S.ANSWERED),
    (_AB, _S.ANSWERED, _E.BYE, _S.HUNG_UP),  # before the ACK we wait for (an ACK we owe goes first)
    (_AB, _S.ANSWERED, _E.LOST, _S.HUNG_UP),
    # -- the confirmed dialog: requests relayed in it --------------------------------------------
    (_AB, _S.UP, _E.OFFER_IN, _S.OFFER_RECEIVED),
    (_AB, _S.UP, _E.OFFER_OUT, _S.OFFER_SENT),
    (_AB, _S.UP, _E.REQUEST, _S.UP),
    (_AB, _S.UP, _E.BYE, _S.HUNG_UP),
    (_AB, _S.UP, _E.LOST, _S.HUNG_UP),
    (_AB, _S.OFFER_RECEIVED, _E.ANSWER, _S.ANSWERED),  # a re-INVITE's 2xx: its ACK is due
    (_AB, _S.OFFER_RECEIVED, _E.ACCEPT, _S.UP),  # an UPDATE's 2xx
    (_AB, _S.OFFER_RECEIVED, _E.REJECT, _S.UP),  # failed: the call goes on with its old session
    (_AB, _S.OFFER_RECEIVED, _E.REQUEST, _S.OFFER_RECEIVED),
    (_AB, _S.OFFER_RECEIVED, _E.BYE, _S.HUNG_UP),
    (_AB, _S.OFFER_RECEIVED, _E.LOST, _S.HUNG_UP),
    (_AB, _S.OFFER_SENT, _E.ANSWER, _S.ANSWERED),
    (_AB, _S.OFFER_SENT, _E.ACCEPT, _S.UP),
    (_AB, _S.OFFER_SENT, _E.REJECT, _S.UP),
    (_AB, _S.OFFER_SENT, _E.FAIL, _S.UP),  # no answer in 64*T1: the old session stays
    (_AB, _S.OFFER_SENT, _E.REQUEST, _S.OFFER_SENT),
    (_AB, _S.OFFER_SENT, _E.BYE, _S.HUNG_UP),
    (_AB, _S.OFFER_SENT, _E.LOST, _S.HUNG_UP),
    # -- the end: late answers and crossing BYEs change nothing -----------------------------------
    (_A, _S.ENDED, _E.BYE, _S.ENDED),  # the caller's BYE in an early dialog, after our 487
    *((_AB, _S.HUNG_UP, event, _S.HUNG_UP)
      for event in (_E.BYE, _E.ANSWER, _E.ACCEPT, _E.REJECT, _E.FAIL, _E.ACK, _E.LOST)),
)


def _table() -> dict[LegRole, dict[LegState, dict[LegEvent, LegState]]]:
    table: dict[LegRole, dict[LegState, dict[LegEvent, LegState]]] = {
        role: {state: {} for state in LegState} for role in LegRole}
    for roles, state, event, after in _ROWS:
        for role in roles:
            assert event not in table[role][state], f"two rows for {role} {state} {event}"
            table[role][state][event] = after
    return table


TRANSITIONS: Mapping[LegRole, Mapping[LegState, Mapping[LegEvent, LegState]]] = _table()
"""role → state → event → next state: `_ROWS` as a lookup."""


def transition(role: LegRole, state: LegState, event: LegEvent) -> LegState:
    """The state a `role` leg in `state` goes to on `event`; LegStateError if the table has no such row."""
    try:
        return TRANSITIONS[role][state][event]
    except KeyError:
        raise LegStateError(f"{role} leg in state {state}: no transition on {event}") from None


# What an incoming re-INVITE or UPDATE gets in a state that has no OFFER_IN row (RFC 3261 §14).
_OFFER_REFUSALS: dict[tuple[LegRole, LegState], int] = {
    **{(role, _S.OFFER_SENT): 491 for role in LegRole},  # glare: ours is pending (§14.1)
    **{(role, _S.ANSWERED): 491 for role in LegRole},  # an INVITE waits for its ACK (§14.1)
    **{(role, _S.OFFER_RECEIVED): 500 for role in LegRole},  # theirs is not answered yet (§14.2)
    (LegRole.CALLER, _S.EARLY): 500,  # its first INVITE is not answered yet
    **{(LegRole.CALLEE, state): 491 for state in (_S.EARLY, _S.CANCEL_PENDING, _S.CANCELLING)},
}


def refusal(role: LegRole, state: LegState, event: LegEvent) -> int:
    """The status an incoming request that is not a transition gets: 491, 500 (with Retry-After), or 481.

    A re-INVITE or UPDATE while an offer or INVITE of ours is pending on the dialog is glare (491);
    one while the peer's previous INVITE is unanswered gets 500 (§14.2 wants a Retry-After with
    it); anything else a leg cannot take means it has no dialog for it: 481.
    """
    if event is _E.OFFER_IN:
        return _OFFER_REFUSALS.get((role, state), 481)
    return 481
