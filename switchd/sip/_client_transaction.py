"""Client transactions over a reliable transport: INVITE (§17.1.1) and non-INVITE (§17.1.2).

The transaction is created by the TU as it sends the request: the caller writes the request on
the connection itself (on a reliable transport the transaction never retransmits it), then feeds
every response that matches the transaction (see `client_key`) to `receive`.

INVITE client, every transition (reliable transport, so Timer A never runs and Timer D is 0):

    Calling    --1xx-->        Proceeding  ToTransactionUser
    Calling    --Timer B-->    Terminated  TimedOut("B")
    Calling    --2xx-->        Terminated  ToTransactionUser (the TU's dialog sends the ACK, §13.2.2.4)
    Proceeding --1xx-->        Proceeding  ToTransactionUser
    Proceeding --2xx-->        Terminated  ToTransactionUser
    Calling/Proceeding --300-699--> Completed  Transmit(ACK, same branch, §17.1.1.3), ToTransactionUser
    Completed  --300-699-->    Completed   Transmit(the same ACK again)
    Completed  --Timer D-->    Terminated

Non-INVITE client (Timer E never runs, Timer K is 0):

    Trying     --1xx-->        Proceeding  ToTransactionUser
    Trying/Proceeding --200-699--> Completed  ToTransactionUser
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


class ClientTransaction(Transaction):
    """What both client kinds share: they are fed the responses that match them."""

    __slots__ = ()

    def receive(self, response: Response, now: float) -> list[TransactionOutput]:
        """Feed a response that matched this transaction (§17.1.3); returns what to do."""
        raise NotImplementedError  # pragma: no cover


class InviteClientTransaction(ClientTransaction):
    """The client side of an INVITE exchange (RFC 3261 §17.1.1), reliable transport.

    `now` is when the INVITE was sent: Timer B (64*T1) runs from it. A 2xx terminates the
    transaction and goes to the TU, which owns the ACK for it (Dialog.make_request(ACK)); a
    non-2xx final is ACKed here, on the INVITE's branch, before it goes to the TU.
    """

    __slots__ = ("_ack",)

    def __init__(self, request: Request, *, now: float, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        if request.method != Method.INVITE:
            raise LocalProtocolError(f"InviteClientTransaction needs an INVITE, got {request.method!r}")
        super().__init__(request, _S.CALLING, timers)
        self._ack: Request | None = None
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
                    self._disarm()  # Timer B only guards the Calling state
                    self._set_state(_S.PROCEEDING)
                return [ToTransactionUser(response)]
            if status < 300:
                return [ToTransactionUser(response), *self._terminate()]
            self._ack = make_ack_for_non2xx(self.request, response)
            self._disarm()
            self._set_state(_S.COMPLETED)
            return [Transmit(self._ack), ToTransactionUser(response), *self._arm("D", now, self.timers.timer_d)]
        if self._state is _S.COMPLETED and status >= 300 and self._ack is not None:
            return [Transmit(self._ack)]  # §17.1.1.2: a retransmitted final gets the ACK again
        return []

    def _on_timer(self, timer: TimerName, now: float) -> list[TransactionOutput]:
        if timer == "B":
            return [TimedOut("B"), *self._terminate()]
        return self._terminate()  # Timer D


class NonInviteClientTransaction(ClientTransaction):
    """The client side of any request but INVITE and ACK (RFC 3261 §17.1.2), reliable transport.

    `now` is when the request was sent: Timer F (64*T1) runs from it.
    """

    __slots__ = ()

    def __init__(self, request: Request, *, now: float, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        if request.method in (Method.INVITE, Method.ACK):
            raise LocalProtocolError(
                f"NonInviteClientTransaction cannot carry {request.method!r}: an INVITE has its own"
                " transaction kind and an ACK has none"
            )
        super().__init__(request, _S.TRYING, timers)
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
        return [ToTransactionUser(response), *self._arm("K", now, self.timers.timer_k)]

    def _on_timer(self, timer: TimerName, now: float) -> list[TransactionOutput]:
        if timer == "F":
            return [TimedOut("F"), *self._terminate()]
        return self._terminate()  # Timer K
