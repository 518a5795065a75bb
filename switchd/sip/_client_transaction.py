"""Client transactions: INVITE (RFC 3261 §17.1.1) and non-INVITE (§17.1.2), over TCP or UDP.

The transaction is created by the TU as it sends the request: the caller writes the request on
the transport itself, then feeds every response that matches the transaction (see `client_key`)
to `receive`. On an unreliable transport (``reliable=False``) the transaction retransmits the
request itself (a `Transmit` from `handle_timeout`) and lingers in Completed to absorb duplicates.

INVITE client, every transition ("UDP:" marks what only an unreliable transport does):

    Calling    --Timer A-->    Calling     UDP: Transmit(the INVITE again); A doubles (T1, 2*T1, 4*T1 ...)
    Calling    --1xx-->        Proceeding  ToTransactionUser; Timers A and B stop
    Calling    --Timer B-->    Terminated  TimedOut("B")
    Calling    --2xx-->        Terminated  ToTransactionUser (the TU's dialog sends the ACK, §13.2.2.4)
    Proceeding --1xx-->        Proceeding  ToTransactionUser
    Proceeding --2xx-->        Terminated  ToTransactionUser
    Calling/Proceeding --300-699--> Completed  Transmit(ACK, same branch, §17.1.1.3), ToTransactionUser;
                                               Timer D (UDP: 32 s; TCP: 0)
    Completed  --300-699-->    Completed   Transmit(the same ACK again)
    Completed  --Timer D-->    Terminated

Non-INVITE client:

    Trying     --Timer E-->    Trying      UDP: Transmit(the request again); E doubles up to T2
    Trying     --1xx-->        Proceeding  ToTransactionUser
    Proceeding --Timer E-->    Proceeding  UDP: Transmit(the request again); E every T2
    Proceeding --1xx-->        Proceeding  ToTransactionUser
    Trying/Proceeding --200-699--> Completed  ToTransactionUser; Timer K (UDP: T4; TCP: 0)
    Trying/Proceeding --Timer F--> Terminated  TimedOut("F")
    Completed  --any-->        Completed   (absorbed)
    Completed  --Timer K-->    Terminated

Any other input is ignored (returns []): a stray duplicate is not worth an error.
"""

from __future__ import annotations

from ._builders import make_ack_for_non2xx
from ._codes import Method
from ._errors import LocalProtocolError
from ._message import Request, Response
from ._timers import DEFAULT_TIMERS, TimerConfig
from ._transaction import (
    TimedOut,
    TimerName,
    ToTransactionUser,
    Transaction,
    TransactionOutput,
    TransactionState,
    Transmit,
)

_S = TransactionState
_AWAITING = frozenset({_S.CALLING, _S.TRYING, _S.PROCEEDING})


class ClientTransaction(Transaction):
    """What both client kinds share: they are fed the responses that match them."""

    __slots__ = ()

    def receive(self, response: Response, now: float) -> list[TransactionOutput]:
        """Feed a response that matched this transaction (§17.1.3); returns what to do."""
        raise NotImplementedError  # pragma: no cover

    @property
    def awaiting_final(self) -> bool:
        """True until a final response (or a timeout, or a transport error) ended the exchange.

        A transaction in Completed only absorbs duplicates (Timer D or K, on UDP): the TU owes
        nothing to it and need not wait for it.
        """
        return self._state in _AWAITING


class InviteClientTransaction(ClientTransaction):
    """The client side of an INVITE exchange (RFC 3261 §17.1.1).

    `now` is when the INVITE was sent: Timer B (64*T1) runs from it, and on UDP (``reliable=False``)
    Timer A retransmits it until a response comes. A 2xx terminates the transaction and goes to
    the TU, which owns the ACK for it (Dialog.make_request(ACK)); a non-2xx final is ACKed here,
    on the INVITE's branch, before it goes to the TU.
    """

    __slots__ = ("_ack",)

    def __init__(self, request: Request, *, now: float, timers: TimerConfig = DEFAULT_TIMERS,
                 reliable: bool = True) -> None:
        if request.method != Method.INVITE:
            raise LocalProtocolError(f"InviteClientTransaction needs an INVITE, got {request.method!r}")
        super().__init__(request, _S.CALLING, timers, reliable)
        self._ack: Request | None = None
        self._start_retransmitting("A", now)
        self._arm("B", now, timers.timer_b)

    @property
    def ack(self) -> Request | None:
        """The ACK this transaction sent for a non-2xx final response, if it sent one."""
        return self._ack

    def receive(self, response: Response, now: float) -> list[TransactionOutput]:
        """Feed a response that matched this transaction; returns what to do."""
        status = response.status
        if self._state in (_S.CALLING, _S.PROCEEDING):
            if status < 200:
                if self._state is _S.CALLING:
                    self._disarm()  # Timers A and B only run in Calling
                    self._set_state(_S.PROCEEDING)
                return [ToTransactionUser(response)]
            if status < 300:
                return [ToTransactionUser(response), *self._terminate()]
            self._ack = make_ack_for_non2xx(self.request, response)
            self._disarm()
            self._set_state(_S.COMPLETED)
            return [Transmit(self._ack), ToTransactionUser(response),
                    *self._arm("D", now, self._linger(self.timers.timer_d))]
        if self._state is _S.COMPLETED and status >= 300 and self._ack is not None:
            return [Transmit(self._ack)]  # §17.1.1.2: a retransmitted final gets the ACK again
        return []

    def _on_timer(self, timer: TimerName, now: float, deadline: float) -> list[TransactionOutput]:
        if timer == "A":
            self._retransmit_again("A", now, deadline, cap=None)  # §17.1.1.2: A doubles, no cap
            return [Transmit(self.request)]
        if timer == "B":
            return [TimedOut("B"), *self._terminate()]
        return self._terminate()  # Timer D


class NonInviteClientTransaction(ClientTransaction):
    """The client side of any request but INVITE and ACK (RFC 3261 §17.1.2).

    `now` is when the request was sent: Timer F (64*T1) runs from it, and on UDP (``reliable=False``)
    Timer E retransmits it until a final response comes.
    """

    __slots__ = ()

    def __init__(self, request: Request, *, now: float, timers: TimerConfig = DEFAULT_TIMERS,
                 reliable: bool = True) -> None:
        if request.method in (Method.INVITE, Method.ACK):
            raise LocalProtocolError(
                f"NonInviteClientTransaction cannot carry {request.method!r}: an INVITE has its own"
                " transaction kind and an ACK has none"
            )
        super().__init__(request, _S.TRYING, timers, reliable)
        self._start_retransmitting("E", now)
        self._arm("F", now, timers.timer_f)

    def receive(self, response: Response, now: float) -> list[TransactionOutput]:
        """Feed a response that matched this transaction; returns what to do."""
        if self._state not in (_S.TRYING, _S.PROCEEDING):
            return []  # Completed absorbs retransmitted finals; Terminated ignores everything
        if response.status < 200:
            self._set_state(_S.PROCEEDING)
            return [ToTransactionUser(response)]
        self._disarm()
        self._set_state(_S.COMPLETED)
        return [ToTransactionUser(response), *self._arm("K", now, self._linger(self.timers.timer_k))]

    def _on_timer(self, timer: TimerName, now: float, deadline: float) -> list[TransactionOutput]:
        if timer == "E":
            if self._state is _S.PROCEEDING:
                self._interval = self.timers.t2  # §17.1.2.2: in Proceeding, E is reset to T2 each time
            self._retransmit_again("E", now, deadline, cap=self.timers.t2)
            return [Transmit(self.request)]
        if timer == "F":
            return [TimedOut("F"), *self._terminate()]
        return self._terminate()  # Timer K
