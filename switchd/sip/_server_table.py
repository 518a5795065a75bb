"""ServerTransactionTable: the server transactions of a datagram endpoint (a UDP socket), driven for it.

On UDP the server side of RFC 3261 §17 belongs with the transport, not with the call: a client
whose answer was lost retransmits its request — seconds after the call that answered it may have
ended, and whether or not anything started for it at all (a 503, a 400) — and that copy must get
the same answer again, never start a second call nor be refused as unknown. So a UDP endpoint
keeps one table, and:

* every request it reads goes through `receive`. A copy of a live transaction's request, or the
  ACK to its non-2xx final, is *absorbed*: the transaction's outputs are returned (the last
  response again, or nothing) and the TU never sees it. Anything new creates a transaction
  (an `InviteServerTransaction` for an INVITE, a `NonInviteServerTransaction` for any other
  method but ACK) and comes back as ``[ToTransactionUser(request)]``: hand it to the TU. An ACK
  that matches nothing (the ACK to a 2xx, §17.2.3) comes back the same way;
* every response it writes goes through `send_response`, which returns the Transmit to perform
  and arms the transaction's timers (Timer G retransmits a non-2xx final; H, I, J, L expire it).
  A response no live transaction sent (its transaction expired, or was evicted) goes out as it
  is; one its transaction refuses (a second final: a bug in the TU) is dropped and logged;
* `handle_timeout(now)` at `next_deadline` returns the retransmissions due and drops what ended.

Keys are §17.2.3's: top-Via branch, sent-by and method (ACK as INVITE), from a request or from
the response that answers it (the response's CSeq method). For an RFC 2543 peer (a branch
without the magic cookie) the Call-ID, From tag and CSeq number stand in for the branch; the
Request-URI, which a response lacks, is left out.

Bounded: at most `max_transactions` are kept; a new one beyond that evicts the oldest, which
loses only the absorbing of its late copies (counted in `evicted`). Deadlines are kept in a heap
(stale entries skipped when popped), so a table of tens of thousands costs O(log n) a message.
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict

from ._codes import Method
from ._errors import LocalProtocolError
from ._ids import MAGIC_COOKIE
from ._message import Request, Response
from ._server_transaction import InviteServerTransaction, NonInviteServerTransaction, ServerTransaction
from ._timers import DEFAULT_TIMERS, TimerConfig
from ._transaction import Terminated, ToTransactionUser, TransactionOutput, Transmit

__all__ = ["ServerTransactionTable"]

log = logging.getLogger(__name__)

_Key = tuple[str, str, int | None, str]


def _key(message: Request | Response, method: str) -> _Key:
    via = message.top_via
    branch = via.branch or ""
    if not branch.startswith(MAGIC_COOKIE):  # RFC 2543: no transaction id in the Via
        branch = "\x00".join(["rfc2543", branch, message.call_id, message.from_.tag or "", str(message.cseq.seq)])
    return branch, via.host.lower(), via.port, method


class ServerTransactionTable:
    """The server transactions of one datagram endpoint; see the module docstring.

    `timers`: the RFC 3261 timers its transactions run on, TimerConfig().
    `max_transactions`: transactions kept at most; the oldest is evicted beyond it, 20_000.
    """

    __slots__ = ("_heap", "_live", "_scheduled", "_seq", "absorbed", "evicted", "max_transactions", "timers")

    def __init__(self, *, timers: TimerConfig = DEFAULT_TIMERS, max_transactions: int = 20_000) -> None:
        if max_transactions < 1:
            raise ValueError(f"max_transactions must be >= 1, not {max_transactions!r}")
        self.timers = timers
        self.max_transactions = max_transactions
        self._live: OrderedDict[_Key, ServerTransaction] = OrderedDict()  # oldest first
        self._heap: list[tuple[float, int, _Key]] = []
        self._scheduled: dict[_Key, float] = {}  # the deadline each key's current heap entry has
        self._seq = 0
        self.absorbed = 0
        """Requests absorbed so far: retransmissions, and ACKs to non-2xx finals."""
        self.evicted = 0
        """Transactions dropped early to stay within max_transactions."""

    def __len__(self) -> int:
        return len(self._live)

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline of any transaction (perhaps a stale one: an early call is harmless)."""
        return self._heap[0][0] if self._heap else None

    def receive(self, request: Request, now: float) -> list[TransactionOutput]:
        """Feed a request read from the endpoint; ``ToTransactionUser(request)`` among the outputs: deliver it.

        The outputs never include Terminated: the table forgets what ended by itself.
        """
        method = request.method
        key = _key(request, str(Method.INVITE if method == Method.ACK else method))
        txn = self._live.get(key)
        if txn is not None:
            outputs = self._after(key, txn, txn.receive(request, now))
            if not any(type(out) is ToTransactionUser for out in outputs):
                self.absorbed += 1
            return outputs
        if method == Method.ACK:
            return [ToTransactionUser(request)]  # the ACK to a 2xx: the dialog's (§17.2.3)
        new: ServerTransaction
        if method == Method.INVITE:
            new = InviteServerTransaction(request, timers=self.timers, reliable=False)
        else:
            new = NonInviteServerTransaction(request, timers=self.timers, reliable=False)
        self._live[key] = new
        if len(self._live) > self.max_transactions:
            old_key, _ = self._live.popitem(last=False)
            self._scheduled.pop(old_key, None)
            self.evicted += 1
        return [ToTransactionUser(request)]

    def send_response(self, response: Response, now: float) -> list[TransactionOutput]:
        """The Transmit (and timers) for a response the endpoint writes; see the module docstring."""
        key = _key(response, str(response.cseq.method))
        txn = self._live.get(key)
        if txn is None:
            return [Transmit(response)]
        try:
            outputs = txn.send_response(response, now)
        except LocalProtocolError as exc:
            log.warning("response dropped: %s", exc, extra={"call_id": response.call_id, "status": response.status})
            return []
        return self._after(key, txn, outputs)

    def handle_timeout(self, now: float) -> list[TransactionOutput]:
        """Fire every due timer; returns the outputs (Transmits to perform, TimedOut to note)."""
        heap, live, scheduled = self._heap, self._live, self._scheduled
        outputs: list[TransactionOutput] = []
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if scheduled.get(key) != deadline:
                continue  # stale: the transaction moved its deadline, ended, or was evicted
            del scheduled[key]
            txn = live[key]
            outputs += self._after(key, txn, txn.handle_timeout(now))
        return outputs

    def _after(self, key: _Key, txn: ServerTransaction, outputs: list[TransactionOutput]) -> list[TransactionOutput]:
        """`outputs` but Terminated, the table's own business: `txn` is dropped once it ended;
        otherwise the heap is made to hold its next deadline."""
        if txn.terminated:
            if self._live.get(key) is txn:
                del self._live[key]
            self._scheduled.pop(key, None)
            return [out for out in outputs if type(out) is not Terminated]
        deadline = txn.next_deadline
        if deadline is None:
            self._scheduled.pop(key, None)
        elif self._scheduled.get(key) != deadline:
            self._scheduled[key] = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, key))
        return outputs
