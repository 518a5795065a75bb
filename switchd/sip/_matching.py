"""Which transaction a message belongs to: RFC 3261 §17.1.3 (responses) and §17.2.3 (requests).

Keys are small frozen values, so a dict finds a transaction in O(1):

* a response matches the client transaction whose request had the same top-Via branch and the
  same CSeq method (§17.1.3) — so the 200 to a CANCEL never reaches the INVITE's transaction;
* a request matches the server transaction with the same top-Via branch, the same top-Via
  sent-by and the same method, where ACK counts as INVITE (§17.2.3) — so the ACK to a non-2xx
  final lands in the INVITE server transaction (the ACK to a 2xx has a new branch and does not);
* a CANCEL is a transaction of its own (method CANCEL), and `cancel_target_key` gives the key of
  the INVITE it cancels: same branch and sent-by, method INVITE (§9.2).

A request whose branch lacks the RFC 3261 magic cookie comes from an RFC 2543 element. For those
the branch in the key is replaced by the fields §17.2.3 compares instead (Call-ID, From tag, CSeq
number, Request-URI); the To tag is left out so the ACK still finds its INVITE.

`TransactionTable` keeps the live transactions of an endpoint (one connection or one call) by key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ._client_transaction import ClientTransaction
from ._codes import Method
from ._ids import MAGIC_COOKIE
from ._message import Request, Response
from ._server_transaction import InviteServerTransaction, ServerTransaction
from ._transaction import TransactionOutput

AnyTransaction = ClientTransaction | ServerTransaction


@dataclass(frozen=True, slots=True)
class ClientKey:
    """Identifies a client transaction (§17.1.3): top-Via branch and CSeq method."""

    branch: str
    method: str


@dataclass(frozen=True, slots=True)
class ServerKey:
    """Identifies a server transaction (§17.2.3): top-Via branch and sent-by, and the method
    (INVITE for an ACK)."""

    branch: str
    host: str
    port: int | None
    method: str


def client_key(message: Request | Response) -> ClientKey:
    """The client-transaction key of a request we send or of a response we receive."""
    return ClientKey(message.top_via.branch or "", str(message.cseq.method))


def server_key(request: Request) -> ServerKey:
    """The server-transaction key of a request we receive; an ACK maps to its INVITE's key."""
    method = Method.INVITE if request.method == Method.ACK else request.method
    return _server_key(request, str(method))


def cancel_target_key(cancel: Request) -> ServerKey:
    """The key of the INVITE server transaction that `cancel` cancels (§9.2)."""
    return _server_key(cancel, str(Method.INVITE))


def _server_key(request: Request, method: str) -> ServerKey:
    via = request.top_via
    branch = via.branch or ""
    if not branch.startswith(MAGIC_COOKIE):
        # RFC 2543 peer: §17.2.3 matches on these fields instead of the branch.
        branch = "\x00".join(
            ["rfc2543", branch, request.call_id, request.from_.tag or "", str(request.cseq.seq), str(request.uri)]
        )
    return ServerKey(branch, via.host.lower(), via.port, method)


class TransactionTable:
    """The live transactions of one endpoint, found by the keys above.

    Add a transaction when it is created, route each incoming message with `match_response` /
    `match_request`, and drive timers with `next_deadline` / `handle_timeout`. A transaction is
    dropped from the table as soon as it reports Terminated (by `handle_timeout`, or by the caller
    with `discard` after a `receive`/`send_response` that ended it). `next_deadline` scans every
    transaction: the table is meant for one connection or one call, not a whole node.
    """

    __slots__ = ("_client", "_server")

    def __init__(self) -> None:
        self._client: dict[ClientKey, ClientTransaction] = {}
        self._server: dict[ServerKey, ServerTransaction] = {}

    def __len__(self) -> int:
        return len(self._client) + len(self._server)

    def __iter__(self) -> Iterator[AnyTransaction]:
        yield from self._client.values()
        yield from self._server.values()

    def add(self, transaction: AnyTransaction) -> None:
        """Index `transaction`; a live transaction with the same key is an error (a reused branch)."""
        if isinstance(transaction, ClientTransaction):
            ckey = client_key(transaction.request)
            if ckey in self._client and not self._client[ckey].terminated:
                raise ValueError(f"a client transaction with key {ckey} is already live")
            self._client[ckey] = transaction
        else:
            skey = server_key(transaction.request)
            if skey in self._server and not self._server[skey].terminated:
                raise ValueError(f"a server transaction with key {skey} is already live")
            self._server[skey] = transaction

    def discard(self, transaction: AnyTransaction) -> None:
        """Forget `transaction` (nothing happens if it is not in the table)."""
        if isinstance(transaction, ClientTransaction):
            ckey = client_key(transaction.request)
            if self._client.get(ckey) is transaction:
                del self._client[ckey]
        else:
            skey = server_key(transaction.request)
            if self._server.get(skey) is transaction:
                del self._server[skey]

    def match_response(self, response: Response) -> ClientTransaction | None:
        """The live client transaction `response` belongs to (§17.1.3), or None (a stray, e.g. a
        retransmitted 2xx after the INVITE transaction ended: the TU's dialog handles it)."""
        found = self._client.get(client_key(response))
        return None if found is None or found.terminated else found

    def match_request(self, request: Request) -> ServerTransaction | None:
        """The live server transaction `request` belongs to (§17.2.3): a retransmission, or the ACK
        to a non-2xx. None means a new request (or an ACK to a 2xx, which the TU handles)."""
        found = self._server.get(server_key(request))
        return None if found is None or found.terminated else found

    def match_cancel(self, cancel: Request) -> InviteServerTransaction | None:
        """The live INVITE server transaction `cancel` cancels (§9.2), or None (answer 481)."""
        found = self._server.get(cancel_target_key(cancel))
        if isinstance(found, InviteServerTransaction) and not found.terminated:
            return found
        return None

    @property
    def next_deadline(self) -> float | None:
        """The earliest deadline of any transaction in the table, or None."""
        deadlines = [t.next_deadline for t in self if t.next_deadline is not None]
        return min(deadlines, default=None)

    def handle_timeout(self, now: float) -> list[tuple[AnyTransaction, list[TransactionOutput]]]:
        """Fire every due timer; returns each affected transaction with its outputs, and drops the
        ones that terminated."""
        fired: list[tuple[AnyTransaction, list[TransactionOutput]]] = []
        for transaction in list(self):
            deadline = transaction.next_deadline
            if deadline is not None and deadline <= now:
                outputs = transaction.handle_timeout(now)
                fired.append((transaction, outputs))
                if transaction.terminated:
                    self.discard(transaction)
        return fired
