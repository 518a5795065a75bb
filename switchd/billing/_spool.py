"""The spool: an append-only, fsync'd JSON-lines file of ops the database could not take.

While the database is down, the store appends each batch here and fsyncs before it replies, so
a spooled op is as durable as a committed one. When the database is back, `read()` streams the
ops back in order, in chunks; the writer applies them (idempotently) and `clear()` removes the
file.

A crash in the middle of an append can leave a torn last line. Its op was never acknowledged
(the reply waits for the fsync), so the line is dropped with a warning. A malformed line
anywhere else is logged with its line number and skipped, and the file is kept as
`<name>.bad-<time>` instead of being removed, so an operator can look at it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from ._errors import StoreUnavailable
from ._ops import Op, decode_op, encode_op

log = logging.getLogger(__name__)


class Spool:
    """The spool file of one node. Blocking: call it from the store's writer thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._bad_lines = 0

    def append(self, ops: Sequence[Op]) -> None:
        """Append `ops` and fsync; raises StoreUnavailable if the disk refuses."""
        data = "".join(encode_op(op) + "\n" for op in ops).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot spool {len(ops)} CDR writes to {self.path}: {exc.strerror}"
            ) from exc

    def pending(self) -> bool:
        """True if the spool holds anything."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def read(self, chunk: int = 1000) -> Iterator[list[Op]]:
        """The spooled ops in append order, `chunk` at a time, streamed from the file.

        An outage of hours can spool millions of ops; they are never all in memory at once. See
        the module docstring for torn and damaged lines.
        """
        try:
            spool = self.path.open("rb")
        except FileNotFoundError:
            return
        with spool:
            ops: list[Op] = []
            for number, line in enumerate(spool, start=1):
                if not line.endswith(b"\n"):  # only the last line can lack its newline: torn
                    log.warning(
                        "spool %s:%d: dropping a torn last line (an unacknowledged write)",
                        self.path,
                        number,
                        extra={"spool": str(self.path)},
                    )
                    break
                if not line.strip():
                    continue
                try:
                    ops.append(decode_op(line.decode()))
                except (UnicodeDecodeError, ValueError) as exc:
                    self._bad_lines += 1
                    log.error(
                        "spool %s:%d: skipping a malformed line: %s",
                        self.path,
                        number,
                        exc,
                        extra={"spool": str(self.path), "line": number},
                    )
                    continue
                if len(ops) >= chunk:
                    yield ops
                    ops = []
            if ops:
                yield ops

    def clear(self) -> None:
        """Remove the replayed spool (or keep it aside if it had malformed lines)."""
        if self._bad_lines:
            kept = self.path.with_name(f"{self.path.name}.bad-{datetime.now(UTC):%Y%m%dT%H%M%S}")
            self.path.rename(kept)
            log.error(
                "spool had %d malformed line(s); kept as %s",
                self._bad_lines,
                kept,
                extra={"spool": str(kept)},
            )
            self._bad_lines = 0
        else:
            self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
