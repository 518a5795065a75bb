"""Server transactions: INVITE (RFC 3261 §17.2.1) and non-INVITE (§17.2.2), over TCP or UDP.

The transaction is created when a request arrives that matches no existing transaction (see
`server_key`); the caller hands that request to its TU itself. Retransmissions of the request
(and, for INVITE, the ACK to a non-2xx final) that match the transaction go to `receive`; the
TU's responses go out through `send_response`, which returns the Transmit to perform. On an
unreliable transport (``reliable=False``) the transaction also retransmits a non-2xx final to an
INVITE (Timer G) and lingers to absorb duplicates.

INVITE server, every transition ("UDP:" marks what only an unreliable transport does):

    Proceeding --send 1xx-->     Proceeding  Transmit(1xx), remembered
    Proceeding --INVITE again--> Proceeding  Transmit(the last 1xx), if there was one
    Proceeding --send 2xx-->     Terminated  Transmit(2xx) (the UAS core retransmits it, §13.3.1.4)
                                 UDP: Accepted instead (RFC 6026 §8.7), Timer L (64*T1)
    Accepted   --INVITE again--> Accepted    UDP: (absorbed: never a second call)
    Accepted   --send 2xx-->     Accepted    UDP: Transmit(2xx) (the core's retransmission)
    Accepted   --ACK-->          Accepted    UDP: ToTransactionUser(ACK)
    Accepted   --Timer L-->      Terminated  UDP
    Proceeding --send 300-699--> Completed   Transmit(final); Timer H (64*T1); UDP: Timer G (T1,
                                             doubling up to T2) if a 1xx went out before the final
    Completed  --Timer G-->      Completed   UDP: Transmit(the final again)
    Completed  --INVITE again--> Completed   Transmit(the final again)
    Completed  --ACK-->          Confirmed   (absorbed: the TU never sees an ACK to a non-2xx)
    Completed  --Timer H-->      Terminated  TimedOut("H")
    Confirmed  --Timer I-->      Terminated  (UDP: T4; TCP: 0)

Non-INVITE server:

    Trying     --request again-->   Trying      (absorbed)
    Trying/Proceeding --send 1xx--> Proceeding  Transmit(1xx), remembered
    Proceeding --request again-->   Proceeding  Transmit(the last 1xx)
    Trying/Proceeding --send 200-699--> Completed  Transmit(final); Timer J (UDP: 64*T1; TCP: 0)
    Completed  --request again-->   Completed   Transmit(the final again)
    Completed  --Timer J-->         Terminated

Timer G is a deliberate narrowing of RFC 3261 §17.2.1, which retransmits every non-2xx final:
here it runs only when a provisional response went out first. A client that heard nothing but
the final is still in Calling and retransmits its INVITE (Timer A), and each retransmission gets
the final again from Completed; a client that heard a 1xx stopped retransmitting (§17.1.1.2) and
needs Timer G. So an answer is never sent more often than its request arrived unless the client
showed it is there: a spoofed INVITE refused at once (a 400, a 503) costs one response, never
eleven (UDP reflection; docs/security.md).

Sending a response when the transaction already sent its final one is a LocalProtocolError (a
bug in the TU); a request that arrives after the end is ignored.
"""

from __future__ import annotations

from ._builders import make_response
from ._codes import Method, Status
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


class ServerTransaction(Transaction):
    """What both server kinds share: remembering the last response, checking what the TU sends."""

    __slots__ = ("_last_final", "_last_provisional")

    def __init__(self, request: Request, state: TransactionState, timers: TimerConfig, reliable: bool) -> None:
        super().__init__(request, state, timers, reliable)
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
    """The server side of an INVITE exchange (RFC 3261 §17.2.1; RFC 6026 §8.7 on UDP).

    Starts in Proceeding. Call `send_trying` at once unless the TU answers within 200 ms
    (§17.2.1); it is not sent automatically, so the core decides.
    """

    __slots__ = ()

    def __init__(self, request: Request, *, timers: TimerConfig = DEFAULT_TIMERS, reliable: bool = True) -> None:
        if request.method != Method.INVITE:
            raise LocalProtocolError(f"InviteServerTransaction needs an INVITE, got {request.method!r}")
        super().__init__(request, _S.PROCEEDING, timers, reliable)

    def send_trying(self, now: float) -> list[TransactionOutput]:
        """Send 100 Trying (§8.2.6.1: no To tag, Timestamp copied)."""
        return self.send_response(make_response(self.request, Status.TRYING), now)

    def send_response(self, response: Response, now: float) -> list[TransactionOutput]:
        """Send the TU's response through the transaction; returns the Transmit (and more)."""
        if self._state is _S.ACCEPTED and 200 <= response.status < 300:
            return [Transmit(response)]  # RFC 6026 §8.7: the core retransmits its 2xx through us
        self._check_can_send(response)
        if response.status < 200:
            self._last_provisional = response
            return [Transmit(response)]
        self._last_final = response
        # A provisional is never sent again once there is a final: not kept (a held call's memory).
        provisional, self._last_provisional = self._last_provisional, None
        if response.status < 300:
            if self.reliable:
                return [Transmit(response), *self._terminate()]
            self._set_state(_S.ACCEPTED)
            return [Transmit(response), *self._arm("L", now, self.timers.timer_l)]
        self._set_state(_S.COMPLETED)
        if provisional is not None:  # see the module docstring: only then Timer G
            self._start_retransmitting("G", now)
        return [Transmit(response), *self._arm("H", now, self.timers.timer_h)]

    def receive(self, request: Request, now: float) -> list[TransactionOutput]:
        """Feed a retransmitted INVITE, or the ACK to our non-2xx final, that matched this transaction."""
        if request.method == Method.ACK:
            if self._state is _S.ACCEPTED:
                return [ToTransactionUser(request)]  # RFC 6026 §8.7: the TU's, not ours
            if self._state is not _S.COMPLETED:
                return []  # Confirmed absorbs ACK retransmissions
            self._disarm()
            self._set_state(_S.CONFIRMED)
            return self._arm("I", now, self._linger(self.timers.timer_i))
        if self._state is _S.PROCEEDING and self._last_provisional is not None:
            return [Transmit(self._last_provisional)]
        if self._state is _S.COMPLETED and self._last_final is not None:
            return [Transmit(self._last_final)]
        return []  # Proceeding before any 1xx, Accepted, Confirmed: absorbed

    def _on_timer(self, timer: TimerName, now: float, deadline: float) -> list[TransactionOutput]:
        if timer == "G":
            self._retransmit_again("G", now, deadline, cap=self.timers.t2)
            return [] if self._last_final is None else [Transmit(self._last_final)]
        if timer == "H":
            return [TimedOut("H"), *self._terminate()]
        return self._terminate()  # Timer I, or L


class NonInviteServerTransaction(ServerTransaction):
    """The server side of any request but INVITE and ACK (RFC 3261 §17.2.2)."""

    __slots__ = ()

    def __init__(self, request: Request, *, timers: TimerConfig = DEFAULT_TIMERS, reliable: bool = True) -> None:
        if request.method in (Method.INVITE, Method.ACK):
            raise LocalProtocolError(
                f"NonInviteServerTransaction cannot serve {request.method!r}: an INVITE has its own"
                " transaction kind and an ACK has none"
            )
        super().__init__(request, _S.TRYING, timers, reliable)

    def send_response(self, response: Response, now: float) -> list[TransactionOutput]:
        """Send the TU's response through the transaction; returns the Transmit (and more)."""
        self._check_can_send(response)
        if response.status < 200:
            self._last_provisional = response
            self._set_state(_S.PROCEEDING)
            return [Transmit(response)]
        self._last_final = response
        self._last_provisional = None  # never sent again once there is a final
        self._set_state(_S.COMPLETED)
        return [Transmit(response), *self._arm("J", now, self._linger(self.timers.timer_j))]

    def receive(self, request: Request, now: float) -> list[TransactionOutput]:
        """Feed a retransmission of the request that matched this transaction."""
        if self._state is _S.PROCEEDING and self._last_provisional is not None:
            return [Transmit(self._last_provisional)]
        if self._state is _S.COMPLETED and self._last_final is not None:
            return [Transmit(self._last_final)]
        return []  # Trying absorbs it: the TU has not answered yet

    def _on_timer(self, timer: TimerName, now: float, deadline: float) -> list[TransactionOutput]:
        return self._terminate()  # Timer J
