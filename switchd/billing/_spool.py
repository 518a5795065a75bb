"""The spool: an append-only, fsync'd JSON-lines file of ops the database could not take.

While the database is down, the store appends each batch here and fsyncs before it replies, so
a spooled op is as durable as a committed one. When the database is back, `read_chunk()` streams
the ops back in order; the writer applies them (idempotently) and `clear()` removes the file.

A crash in the middle of an append can leave a torn last line. Its op was never acknowledged
(the reply waits for the fsync), so the line is cut off with a warning before the spool is
read or appended to again. A malformed line anywhere else is logged with its byte offset and
skipped, and the file is kept as `<name>.bad-<time>` instead of being removed, so an operator
can look at it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
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
        self._repaired = False

    def append(self, ops: Sequence[Op]) -> None:
        """Append `ops` and fsync; raises StoreUnavailable if the disk refuses."""
        data = "".join(encode_op(op) + "\n" for op in ops).encode()
        try:
            self._repair()
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

    def read_chunk(self, offset: int, chunk: int) -> tuple[list[Op], int, bool]:
        """Up to `chunk` ops from byte `offset` on: (ops, the offset after them, reached the end).

        Streams the file: an outage of hours can spool millions of ops, never all in memory.
        """
        self._repair()
        try:
            spool = self.path.open("rb")
        except FileNotFoundError:
            return [], offset, True
        ops: list[Op] = []
        with spool:
            spool.seek(offset)
            for line in spool:
                if not line.endswith(b"\n"):  # cannot happen after _repair(); never read half a write
                    return ops, offset, True
                offset += len(line)
                if not line.strip():
                    continue
                try:
                    ops.append(decode_op(line.decode()))
                except (UnicodeDecodeError, ValueError) as exc:
                    self._bad_lines += 1
                    log.error(
                        "spool %s: skipping a malformed line at byte %d: %s",
                        self.path,
                        offset - len(line),
                        exc,
                        extra={"spool": str(self.path), "offset": offset - len(line)},
                    )
                    continue
                if len(ops) >= chunk:
                    return ops, offset, spool.read(1) == b""
        return ops, offset, True

    def _repair(self) -> None:
        """Cut a torn last line (a crash in the middle of an append), once, before any use.

        Its op was never acknowledged (the reply waits for the fsync), so dropping it loses
        nothing; leaving it would glue the next append onto it and lose that one too.
        """
        if self._repaired:
            return
        self._repaired = True
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with self.path.open("rb+") as spool:
            spool.seek(size - 1)
            if spool.read(1) == b"\n":
                return
            keep = size
            while keep > 0:  # back to the last newline, 64 KiB at a time
                start = max(0, keep - 65_536)
                spool.seek(start)
                block = spool.read(keep - start)
                newline = block.rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                keep = start
            log.warning(
                "spool %s: dropping a torn last line of %d bytes (an unacknowledged write)",
                self.path,
                size - keep,
                extra={"spool": str(self.path)},
            )
            spool.truncate(keep)
            os.fsync(spool.fileno())

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
