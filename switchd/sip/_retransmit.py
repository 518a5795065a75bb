"""The UAS core's 2xx retransmission (RFC 3261 §13.3.1.4): until the ACK, or give up after 64*T1.

The INVITE server transaction ends as soon as it sends a 2xx, so the 2xx's reliability is the UAS
core's job. `Uas2xxRetransmitter` is that job, sans-IO: arm it with the 2xx when it is sent, feed
it the ACKs that reach the dialog, and drive its one deadline. Retransmissions go out T1, 2*T1,
4*T1 ... apart, the gap capped at T2; if no ACK came 64*T1 after the 2xx, it reports
`AckTimedOut` and the core ends the call (a BYE on that dialog, §13.3.1.4).

Over TCP the transport itself is reliable and the core may choose not to arm one at all; with the
defaults (T1 0.5 s, T2 4 s) the 2xx goes out again at +0.5, +1.5, +3.5, +7.5, +11.5 ... +31.5 s and
the give-up is at +32 s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ._codes import Method
from ._errors import LocalProtocolError
from ._message import Request, Response
from ._timers import DEFAULT_TIMERS, TimerConfig
from ._transaction import Transmit

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """The 2xx `response` got no ACK within 64*T1: confirm then end the dialog with a BYE."""

    response: Response


class Uas2xxRetransmitter:
    """Retransmits one 2xx to an INVITE until the matching ACK arrives; see the module docstring.

    `now` is when the 2xx was first sent.
    """

    __slots__ = ("_done", "_give_up_at", "_interval", "_next", "response", "timers")

    def __init__(self, response: Response, *, now: float, timers: TimerConfig = DEFAULT_TIMERS) -> None:
        if not 200 <= response.status < 300 or response.cseq.method != Method.INVITE:
            raise LocalProtocolError(
                f"Uas2xxRetransmitter retransmits a 2xx to an INVITE, got {response.status}"
                f" to {response.cseq.method}"
            )
        self.response = response
        self.timers = timers
        self._interval = timers.t1
        self._next = now + timers.t1
        self._give_up_at = now + timers.ack_timeout
        self._done = False

    def __repr__(self) -> str:
        return f"<Uas2xxRetransmitter {self.response.call_id} next_deadline={self.next_deadline!r}>"

    @property
    def done(self) -> bool:
        """True once the ACK came, the retransmitter gave up, or `stop` was called."""
        return self._done

    @property
    def next_deadline(self) -> float | None:
        """When `handle_timeout` must next be called; None once done."""
        if self._done:
            return None
        return min(self._next, self._give_up_at)

    def handle_timeout(self, now: float) -> list[Transmit | AckTimedOut]:
        """Retransmit the 2xx, or give up, if a deadline is due at `now`; else nothing."""
        deadline = self.next_deadline
        if deadline is None or now < deadline:
            return []
        if now >= self._give_up_at:
            self._done = True
            log.warning(
                "no ACK for %d to INVITE after %gs, giving up",
                self.response.status,
                self.timers.ack_timeout,
                extra={"call_id": self.response.call_id},
            )
            return [AckTimedOut(self.response)]
        # Step the schedule from the missed deadline, not from `now`, so a late caller does not
        # shift it; several missed deadlines still produce a single retransmission.
        while self._next <= now:
            self._interval = min(2 * self._interval, self.timers.t2)
            self._next += self._interval
        return [Transmit(self.response)]

    def acknowledge(self, ack: Request) -> bool:
        """Feed an ACK that reached the dialog; True (and done) if it acknowledges this 2xx.

        It does when its Call-ID and CSeq number are the 2xx's (§13.2.2.4: the ACK carries the
        INVITE's CSeq number); an ACK for another INVITE of the dialog returns False.
        """
        if self._done or ack.method != Method.ACK:
            return False
        if ack.call_id != self.response.call_id or ack.cseq.seq != self.response.cseq.seq:
            return False
        self._done = True
        return True

    def stop(self) -> None:
        """Stop retransmitting without an ACK (the call ended some other way)."""
        self._done = True
