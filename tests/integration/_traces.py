"""What each SIPp caller saw, per Call-ID, read from its `-trace_msg` file.

SIPp writes every message it sends or receives as a block headed by a line of dashes and a
wall-clock stamp with microseconds (`----- 2026-12-02 04:57:18.407865`), then `TCP message sent
(N bytes):` or `TCP message received [N] bytes :`, a blank line and the message. `read_trace`
folds the blocks into one `CallerView` per Call-ID: when the INVITE went out, the responses that
came back (and when), the ACK, the BYE either side sent and its answer. From these follow the
facts the billing checks need: did the caller get anything but 100 Trying, did it see the call
end, how long it held the answered call, how long setup took.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

_BLOCK = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)\s*$", re.MULTILINE)


@dataclass
class CallerView:
    """One call as its caller saw it; times are epoch seconds (the caller's wall clock)."""

    call_id: str
    invite_at: float | None = None
    responses: list[tuple[float, int, str]] = field(default_factory=list)  # (when, status, CSeq method)
    ack_at: float | None = None
    bye_sent_at: float | None = None
    bye_received_at: float | None = None  # the switch hung up
    bye_received_answered: bool = False

    def _to(self, method: str) -> list[tuple[float, int]]:
        return [(at, status) for at, status, m in self.responses if m == method]

    @property
    def got_more_than_trying(self) -> bool:
        """The caller received some response other than 100 Trying: the node took the call on."""
        return any(status != 100 for _, status, _ in self.responses)

    @property
    def final(self) -> tuple[float, int] | None:
        """The first final response to the INVITE: (when, status)."""
        return next(((at, s) for at, s in self._to("INVITE") if s >= 200), None)

    @property
    def answered_at(self) -> float | None:
        final = self.final
        return final[0] if final is not None and 200 <= final[1] < 300 else None

    @property
    def setup_latency(self) -> float | None:
        """INVITE → the first 180/183 or final answer, seconds."""
        first = next((at for at, s in self._to("INVITE") if s > 100), None)
        return None if first is None or self.invite_at is None else first - self.invite_at

    @property
    def bye_answer(self) -> int | None:
        """The status the node answered the caller's BYE with."""
        return next((s for _, s in self._to("BYE") if s >= 200), None)

    @property
    def bye_answered_at(self) -> float | None:
        """When the caller received the final answer to its BYE."""
        return next((at for at, s in self._to("BYE") if s >= 200), None)

    @property
    def ended_at(self) -> float | None:
        """When the caller saw the call end: a final non-2xx, its BYE answered 2xx, or the node's BYE it answered."""
        final = self.final
        if final is not None and final[1] >= 300:
            return final[0]
        bye_ok = next((at for at, s in self._to("BYE") if 200 <= s < 300), None)
        if self.bye_sent_at is not None and bye_ok is not None:
            return self.bye_sent_at
        if self.bye_received_at is not None and self.bye_received_answered:
            return self.bye_received_at
        return None

    @property
    def hold(self) -> float | None:
        """How long the answered call was up as the caller saw it: its 200 → the BYE (either side's)."""
        answered, ended = self.answered_at, self.ended_at
        return None if answered is None or ended is None or self.final is None or self.final[1] >= 300 \
            else ended - answered


# SIPp (run with -lost) notes a message it dropped on purpose without ending the line, so the next
# block's header would not start a line: put every header on a line of its own first.
_GLUED_HEADER = re.compile(r"(?<=[^\n-])(-{20,} \d{4}-\d\d-\d\d)")


def _blocks(text: str) -> Iterator[tuple[float, str, str]]:
    """(when, "sent"|"received", message) for every block of a SIPp message trace."""
    parts = _BLOCK.split(_GLUED_HEADER.sub(r"\n\1", text))
    for stamp, body in zip(parts[1::2], parts[2::2], strict=True):
        at = datetime.strptime(stamp.replace("\t", " "), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        head, _, message = body.lstrip("\n").partition("\n")
        direction = "sent" if " sent" in head else "received"
        yield at, direction, message.lstrip("\r\n")


def _header(message: str, *names: str) -> str | None:
    for line in message.split("\n"):
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in names:
            return value.strip()
    return None


def read_trace(paths: Iterable[Path]) -> dict[str, CallerView]:
    """Every call in the SIPp message traces at `paths`, by Call-ID."""
    calls: dict[str, CallerView] = {}
    for path in paths:
        if not path.exists():
            continue
        for at, direction, message in _blocks(path.read_text(encoding="latin-1")):
            call_id = _header(message, "call-id", "i")
            cseq = (_header(message, "cseq") or "").split()
            if call_id is None or len(cseq) != 2:
                continue
            view = calls.setdefault(call_id, CallerView(call_id))
            start = message.split("\n", 1)[0].strip()
            method = cseq[1]
            if start.startswith("SIP/2.0 "):
                status = int(start.split()[1])
                if direction == "received":
                    view.responses.append((at, status, method))
                elif method == "BYE" and 200 <= status < 300:
                    view.bye_received_answered = True
                continue
            request = start.split(" ", 1)[0]
            if direction == "sent":
                if request == "INVITE" and view.invite_at is None:
                    view.invite_at = at
                elif request == "ACK" and view.ack_at is None:
                    view.ack_at = at
                elif request == "BYE" and view.bye_sent_at is None:
                    view.bye_sent_at = at
            elif request == "BYE" and view.bye_received_at is None:
                view.bye_received_at = at
    return calls
