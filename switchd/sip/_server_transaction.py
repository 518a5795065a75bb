"""Server transactions over a reliable transport: INVITE (§17.2.1) and non-INVITE (§17.2.2).

The transaction is created when a request arrives that matches no existing transaction (see
`server_key`); the caller hands that request to its TU itself. Retransmissions of the request
(and, for INVITE, the ACK to a non-2xx final) that match the transaction go to `receive`; the
TU's responses go out through `send_response`, which returns the Transmit to perform.

INVITE server, every transition (reliable transport, so Timer G never runs and Timer I is 0):

    Proceeding --send 1xx-->     Proceeding  Transmit(1xx), remembered
    Proceeding --INVITE again--> Proceeding  Transmit(the last 1xx), if there was one
    Proceeding --send 2xx-->     Terminated  Transmit(2xx) (the UAS core retransmits it, §13.3.1.4)
    Proceeding --send 300-699--> Completed   Transmit(final); Timer H armed (64*T1)
    Completed  --INVITE again--> Completed   Transmit(the final again)
    Completed  --ACK-->          Confirmed   (absorbed: the TU never sees an ACK to a non-2xx)
    Completed  --Timer H-->      Terminated  TimedOut("H")
    Confirmed  --Timer I-->      Terminated

Non-INVITE server (Timer J is 0):

    Trying     --request again-->   Trying      (absorbed)
    Trying/Proceeding --send 1xx--> Proceeding  Transmit(1xx), remembered
    Proceeding --request again-->   Proceeding  Transmit(the last 1xx)
    Trying/Proceeding --send 200-699--> Completed  Transmit(final)
    Completed  --request again-->   Completed   Transmit(the final again)
    Completed  --Timer J-->         Terminated

Sending a response when the transaction already sent its final one is a LocalProtocolError (a
bug in the TU); a request that arrives after the end is ignored.
"""

from __future__ import annotations

from ._builders import make_response
from ._codes import Method, Status
from ._errors import LocalProtocolError
from ._message import Request, Response
from ._timers import DEFAULT_TIMERS, TimerConfig
from ._transaction import TimedOut, TimerName, Transaction, TransactionOutput, TransactionState, Transmit

_S = TransactionState


class ServerTransaction(Transaction):
    """What both server kinds share: remembering the last response, checking what the TU sends."""

    __slots__ = ("_last_final", "_last_provisional")

    def __init__(self, request: Request, state: TransactionState, timers: TimerConfig) -> None:
        super().__init__(request, state, timers)
        self._last_provisional: Response | None = None
        self._last_final: Response | None = None

    def receive(self, request: Request, now: float) -> list[TransactionOutput]:
        """Feed a request that matched this transaction (§17.2.3); returns what to do."""
        raise NotImplementedError  # pragma: no cover

    def send_response(self, response: Response, now: float) -> list[TransactionOutput]:
        """Send the TU's response through the transaction; returns the Transmit (and more)."""
        raise NotImplementedError  # pragma: no cover

    @property
    def final_response(self) -> Response | None:
        """The final response the TU sent, once it sent one."""
        return self._last_final

    def _check_can_send(self, response: Response) -> None:
        if self._state not in (_S.TRYING, _S.PROCEEDING):
            raise LocalProtocolError(
                f"cannot send {response.status} for {self.request.method} branch {self.branch!r}: the"
                f" transaction is {self._state.value}, its final response was already sent"
            )
        if response.status < 100 or response.status > 699:
            raise LocalProtocolError(f"cannot send status {response.status}: not in 100-699 (§7.2)")


class InviteServerTransaction(ServerTransaction):
    """The server side of an INVITE exchange (RFC 3261 §17.2.1), reliable transport.

    Starts in Proceeding. Call `send_trying` at once unless the TU answers within 200 ms
    (§17.2.1); it is not sent automatically, so the core decides.
    """

    __slots__ = ()

    def __init__(self, request: Request, *, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        if request.method != Method.INVITE:
            raise LocalProtocolError(f"InviteServerTransaction needs an INVITE, got {request.method!r}")
        super().__init__(request, _S.PROCEEDING, timers)

    def send_trying(self, now: float) -> list[TransactionOutput]:
        """Send 100 Trying (§8.2.6.1: no To tag, Timestamp copied)."""
        return self.send_response(make_response(self.request, Status.TRYING), now)

    def send_response(self, response: Response, now: float) -> list[TransactionOutput]:
        """Send the TU's response through the transaction; returns the Transmit (and more)."""
        self._check_can_send(response)
        if response.status < 200:
            self._last_provisional = response
            return [Transmit(response)]
        self._last_final = response
        if response.status < 300:
            return [Transmit(response), *self._terminate()]
        self._set_state(_S.COMPLETED)
        return [Transmit(response), *self._arm("H", now, self.timers.timer_h)]

    def receive(self, request: Request, now: float) -> list[TransactionOutput]:
        """Feed a retransmitted INVITE, or the ACK to our non-2xx final, that matched this transaction."""
        if request.method == Method.ACK:
            if self._state is not _S.COMPLETED:
                return []  # Confirmed absorbs ACK retransmissions
            self._disarm()
            self._set_state(_S.CONFIRMED)
            return self._arm("I", now, self.timers.timer_i)
        if self._state is _S.PROCEEDING and self._last_provisional is not None:
            return [Transmit(self._last_provisional)]
        if self._state is _S.COMPLETED and self._last_final is not None:
            return [Transmit(self._last_final)]
        return []

    def _on_timer(self, timer: TimerName, now: float) -> list[TransactionOutput]:
        if timer == "H":
            return [TimedOut("H"), *self._terminate()]
        return self._terminate()  # Timer I


class NonInviteServerTransaction(ServerTransaction):
    """The server side of any request but INVITE and ACK (RFC 3261 §17.2.2), reliable transport."""

    __slots__ = ()

    def __init__(self, request: Request, *, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        if request.method in (Method.INVITE, Method.ACK):
            raise LocalProtocolError(
                f"NonInviteServerTransaction cannot serve {request.method!r}: an INVITE has its own"
                " transaction kind and an ACK has none"
            )
        super().__init__(request, _S.TRYING, timers)

    def send_response(self, response: Response, now: float) -> list[TransactionOutput]:
        """Send the TU's response through the transaction; returns the Transmit (and more)."""
        self._check_can_send(response)
        if response.status < 200:
            self._last_provisional = response
            self._set_state(_S.PROCEEDING)
            return [Transmit(response)]
        self._last_final = response
        self._set_state(_S.COMPLETED)
        return [Transmit(response), *self._arm("J", now, self.timers.timer_j)]

    def receive(self, request: Request, now: float) -> list[TransactionOutput]:
        """Feed a retransmission of the request that matched this transaction."""
        if self._state is _S.PROCEEDING and self._last_provisional is not None:
            return [Transmit(self._last_provisional)]
        if self._state is _S.COMPLETED and self._last_final is not None:
            return [Transmit(self._last_final)]
        return []  # Trying absorbs it: the TU has not answered yet

    def _on_timer(self, timer: TimerName, now: float) -> list[TransactionOutput]:
        return self._terminate()  # Timer J
