"""WireTap: what every SIP connection of a node counts, and the SIP trace it feeds when one is on.

Every message a connection reads or writes (accepted connections and gateway links alike: both
legs of every call) is counted here — requests by method, responses by status, and the
messages the edge refused to parse by the status it answered. The metrics read these counts at
scrape time; nothing is sent anywhere per message.

Tracing is off until a trace handler turns it on (`tracing`). While it is on, the messages go
to the node's EventManager in batches: the first message traced after the last batch was taken
starts a `SipTracedBatch` and notifies it (`switchd.otp.notify`, which never blocks); every
message traced until a handler takes the batch (`SipTracedBatch.take`) joins it. So the
EventManager wakes once per batch — under load, once for many messages — and the wall clock is
read once per batch (each message keeps the event loop's time, which the batch turns into UTC).
A message read is traced with the bytes it was read from (the connection's framer keeps them
while tracing is on), a message written with the bytes written: nothing is serialised again.
The cost on the hot path: with tracing off, one attribute test per message; on, a tuple appended
to a list per message, and one notify per batch.

Strategy: node-local state, not a process, like `Admission` and `ConnectionTable`: written by
the connection processes of this node's one trio loop, each update a dict increment without an
await. `ConnectionSettings.tap` carries it to every connection of the node.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeAlias

import trio

from switchd.otp import NoProcess, notify
from switchd.sip import Method, Request, Response, SipError, serialize

log = logging.getLogger(__name__)

Direction = Literal["in", "out"]

_KNOWN = frozenset(m.value for m in Method)
OTHER_METHOD = "other"
"""The label of a request whose method switchd does not know by name: a peer cannot make labels."""


@dataclass(frozen=True, slots=True)
class SipTraced:
    """One SIP message on the wire, for the trace: `direction` seen from switchd, `peer` as host:port.

    `text` is the message as written (out) or as read (in; as parsed and written again when the
    reader had no bytes to give: header order and values kept, folding and spacing normalised).
    """

    at: datetime  # UTC
    direction: Direction
    peer: str
    transport: str  # "tcp"
    message: Request | Response
    text: bytes

    @property
    def call_id(self) -> str | None:
        """The message's Call-ID; None for an edge answer whose request had none fit to copy."""
        try:
            return self.message.call_id
        except SipError:
            return None

    @property
    def summary(self) -> str:
        """Its first line as a ladder shows it: "INVITE sip:…" or "180 Ringing"."""
        message = self.message
        if isinstance(message, Request):
            return f"{message.method} {message.uri}"
        return f"{message.status} {message.reason}"

    @property
    def starts_call(self) -> bool:
        """True for a caller's new INVITE (in, no To tag): the first message of a call."""
        message = self.message
        if self.direction != "in" or not isinstance(message, Request) or message.method != Method.INVITE:
            return False
        try:
            return message.to.tag is None
        except SipError:  # the edge checked it; a trace never fails on a header
            return False


BATCH_LIMIT = 10_000
"""Messages one batch takes; the next starts another (a batch no handler takes cannot grow without end)."""

_Entry: TypeAlias = tuple[float, Direction, str, Request | Response, bytes]
"""A traced message as the hot path records it: (event-loop time, direction, peer, message, bytes)."""


class SipTracedBatch:
    """The messages traced since the last batch was taken, as one event (see the module docstring).

    Handlers call `take()`: the first call closes the batch (later messages start the next one)
    and every call returns the same `SipTraced` list, oldest first.
    """

    __slots__ = ("_entries", "_taken", "_tap", "_wall", "_when")

    def __init__(self, tap: WireTap, when: float) -> None:
        self._tap: WireTap | None = tap
        self._when = when  # the event loop's time and the wall clock's, read together once
        self._wall = time.time()
        self._entries: list[_Entry] = []
        self._taken: list[SipTraced] | None = None

    def take(self) -> list[SipTraced]:
        """The batch's messages; closes it to new ones."""
        if self._taken is None:
            tap, self._tap = self._tap, None
            if tap is not None and tap._batch is self:
                tap._batch = None
            offset = self._wall - self._when
            self._taken = [SipTraced(datetime.fromtimestamp(at + offset, UTC), direction, peer, "tcp", message, data)
                           for at, direction, peer, message, data in self._entries]
            self._entries = []
        return self._taken

    def __len__(self) -> int:
        return len(self._entries) if self._taken is None else len(self._taken)

    def __repr__(self) -> str:
        return f"<SipTracedBatch of {len(self)}>"


def method_label(method: Method | str) -> str:
    """The metrics label for `method`: its name when switchd knows it, else `OTHER_METHOD`."""
    if type(method) is Method:  # what the parser hands back for a known method: no hashing of the enum
        return method._value_
    return method if method in _KNOWN else OTHER_METHOD


def _count(message: Request | Response, requests: dict[str, int], responses: dict[int, int]) -> None:
    if type(message) is Request:
        method = message.method
        label = method._value_ if type(method) is Method else method_label(method)
        requests[label] = requests.get(label, 0) + 1
    else:
        status = message.status  # type: ignore[union-attr]  # a Response: the only other kind
        responses[status] = responses.get(status, 0) + 1


class WireTap:
    """The SIP message counts of one node and the switch for its trace (see the module docstring).

    ``events``: the registered name of the EventManager traced messages go to, "events".
    """

    __slots__ = (
        "_batch",
        "events",
        "parse_errors",
        "requests_in",
        "requests_out",
        "responses_in",
        "responses_out",
        "tracing",
    )

    def __init__(self, *, events: str = "events") -> None:
        self.events = events
        # plain dicts, not Counters: a Counter's += costs twice a dict's on this path
        self.requests_in: dict[str, int] = {}  # by method label
        self.requests_out: dict[str, int] = {}
        self.responses_in: dict[int, int] = {}  # by status code
        self.responses_out: dict[int, int] = {}
        self.parse_errors: dict[int, int] = {}  # messages refused at the edge, by the status answered
        self.tracing = False  # set by the trace handler while it is installed
        self._batch: SipTracedBatch | None = None  # notified, not yet taken: traced messages join it

    def received(self, message: Request | Response, peer: str, data: bytes = b"", at: float | None = None) -> None:
        """A connection read `message` (from the bytes `data`, when it has them) from `peer` at `at`
        (the event loop's time; now when None)."""
        _count(message, self.requests_in, self.responses_in)
        if self.tracing:
            self._trace("in", message, data or serialize(message), peer, at)

    def sent(self, message: Request | Response, data: bytes, peer: str) -> None:
        """A connection queued `message`, serialised as `data`, for `peer`."""
        _count(message, self.requests_out, self.responses_out)
        if self.tracing:
            self._trace("out", message, data, peer, None)

    def refused(self, status: int) -> None:
        """The edge refused a message it could not parse, answering (or meaning to answer) `status`."""
        self.parse_errors[status] = self.parse_errors.get(status, 0) + 1

    def _trace(self, direction: Direction, message: Request | Response, data: bytes, peer: str,
               at: float | None) -> None:
        now = trio.current_time() if at is None else at
        batch = self._batch
        if batch is None or len(batch._entries) >= BATCH_LIMIT:
            batch = SipTracedBatch(self, now)
            try:
                notify(self.events, batch)
            except NoProcess:  # the EventManager is restarting: this message is missing from the trace
                log.debug("no event manager %r: a traced message dropped", self.events)
                return
            self._batch = batch
        batch._entries.append((now, direction, peer, message, data))
