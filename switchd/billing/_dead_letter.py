"""The dead-letter file: CDR steps the database cannot take, kept with the reason, never retried.

A *poison* step — one whose values the database refuses (IntegrityError, DataError …), that
cannot even become an op (text that is not valid Unicode in its key), or that was in flight at two
crashes of the store — must not stall the steps behind it nor be retried into a crash loop. The
store quarantines it: one JSON line in `<spool_dir>/<node>.dead.jsonl`, fsync'd before the step
counts as durable, and one ERROR in the log. The line holds the time, the reason, and the op (as
the spool spells it) or, for a step that never became one, the step's fields; every non-ASCII
character is escaped, so a value that is not valid Unicode is kept exactly. An operator can fix a
line and feed the op back; nothing reads the file automatically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from ._errors import StoreUnavailable
from ._ops import Op, encode_op
from ._queue import CdrStep
from ._spool import append_durably

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadRecord:
    """One quarantined write: the op, or the step that never became one, and why."""

    reason: str
    op: Op | None = None
    step: CdrStep | None = None

    @property
    def call_id(self) -> str | None:
        if self.step is not None:
            return self.step.call_id
        if self.op is not None:
            call_id = self.op.values.get("call_id")
            return call_id if isinstance(call_id, str) else None
        return None

    def line(self, at: datetime) -> str:
        """The record as one line of ASCII JSON (no newline); never raises."""
        record: dict[str, object] = {"at": at.isoformat(), "reason": self.reason}
        if self.op is not None:
            try:
                record["op"] = json.loads(encode_op(self.op, ascii_only=True))
            except (TypeError, ValueError):  # a value JSON cannot carry: keep its text
                record["op"] = {
                    "op": self.op.kind.value,
                    "v": {k: _text(v) for k, v in self.op.values.items()},
                }
        if self.step is not None:
            record["step"] = {
                "type": type(self.step).__name__,
                **{f.name: getattr(self.step, f.name) for f in fields(self.step)},
            }
        return json.dumps(record, separators=(",", ":"), default=_text)


def _text(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def printable(text: str | None) -> str | None:
    """`text` safe for any log handler: what is not valid Unicode becomes a backslash escape."""
    return None if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


class DeadLetter:
    """The dead-letter file of one node. Blocking: the store's spool worker only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, records: Sequence[DeadRecord]) -> None:
        """Append `records` and fsync, logging each once; raises StoreUnavailable if the disk refuses."""
        now = datetime.now(UTC)
        data = "".join(record.line(now) + "\n" for record in records).encode("ascii")
        try:
            append_durably(self.path, data)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write {len(records)} quarantined CDR write(s) to {self.path}: {exc.strerror}"
            ) from exc
        for record in records:
            key = record.op.key if record.op is not None else None
            log.error(
                "CDR write quarantined to %s: %s",
                self.path.name,
                printable(record.reason),
                extra={"call_id": printable(record.call_id), "cdr_key": key, "dead_letter": str(self.path)},
            )
