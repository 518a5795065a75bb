"""The spool: an append-only, fsync'd JSON-lines file of ops the database could not take.

While the database is down (or slower than the store's write deadline), the store's spool worker
appends each batch here and fsyncs before the steps count as durable, so a spooled op is as
durable as a committed one. When the database is back, the store's database worker streams the
ops back in order with `read_chunk` and applies them (idempotently); once it has reached the end
the spool worker removes the file with `clear`. The appending side (`Spool`) and the reading side
(`read_chunk`, a function of the path) share no state: each belongs to one worker.

A crash in the middle of an append can leave a torn last line. Its op was never acknowledged
(durable means fsync'd), so `Spool.repair` cuts it off with a warning when the store starts,
before anything reads or appends. A malformed line anywhere else is logged with its byte offset
and skipped (a bad line never blocks the replay), and the file is kept as `<name>.bad-<time>`
instead of being removed, so an operator can look at it. An op that cannot be encoded at all (text
that is not valid Unicode) is handed back to the caller for the dead-letter file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ._errors import StoreUnavailable
from ._ops import Op, decode_op, encode_op

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpoolChunk:
    """What `read_chunk` read: the ops, the offset after them, whether that is the end."""

    ops: list[Op]
    offset: int
    end: bool
    bad_lines: int  # malformed lines skipped


def read_chunk(path: Path, offset: int, chunk: int) -> SpoolChunk:
    """Up to `chunk` ops of the spool `path` from byte `offset` on.

    Streams the file: an outage of hours can spool millions of ops, never all in memory. A line
    without its newline (an append still under way) ends the chunk before it.
    """
    try:
        spool = path.open("rb")
    except FileNotFoundError:
        return SpoolChunk([], offset, True, 0)
    ops: list[Op] = []
    bad = 0
    with spool:
        spool.seek(offset)
        for line in spool:
            if not line.endswith(b"\n"):  # never read half a write
                return SpoolChunk(ops, offset, True, bad)
            offset += len(line)
            if not line.strip():
                continue
            try:
                ops.append(decode_op(line.decode()))
            except (UnicodeDecodeError, ValueError) as exc:
                bad += 1
                log.error(
                    "spool %s: skipping a malformed line at byte %d: %s",
                    path,
                    offset - len(line),
                    exc,
                    extra={"spool": str(path), "offset": offset - len(line)},
                )
                continue
            if len(ops) >= chunk:
                return SpoolChunk(ops, offset, spool.read(1) == b"", bad)
    return SpoolChunk(ops, offset, True, bad)


class Spool:
    """The appending side of one node's spool file. Blocking: the store's spool worker only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, ops: Sequence[Op]) -> list[tuple[Op, str]]:
        """Append `ops` and fsync; returns those that cannot be encoded, with the reason.

        Raises StoreUnavailable if the disk refuses (nothing counts as spooled then).
        """
        refused: list[tuple[Op, str]] = []
        try:
            data = "".join(encode_op(op) + "\n" for op in ops).encode()
        except (TypeError, ValueError):  # a poison op among them (UnicodeEncodeError is a ValueError)
            lines = []
            for op in ops:
                try:
                    lines.append((encode_op(op) + "\n").encode())
                except (TypeError, ValueError) as exc:
                    refused.append((op, f"cannot be spooled: {exc}"))
            data = b"".join(lines)
        try:
            append_durably(self.path, data)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot spool {len(ops)} CDR writes to {self.path}: {exc.strerror}"
            ) from exc
        return refused

    def repair(self) -> None:
        """Cut a torn last line (a crash in the middle of an append); call before any other use.

        Its op was never acknowledged (durable means fsync'd), so dropping it loses nothing;
        leaving it would glue the next append onto it and lose that one too.
        """
        try:
            size = self.path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):  # nothing spooled (or no usable directory)
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

    def clear(self, *, bad_lines: int) -> None:
        """Remove the replayed spool, or keep it aside if its replay skipped `bad_lines` lines."""
        if not self.path.exists():
            return
        if bad_lines:
            kept = self.path.with_name(f"{self.path.name}.bad-{datetime.now(UTC):%Y%m%dT%H%M%S}")
            self.path.rename(kept)
            log.error(
                "spool had %d malformed line(s); kept as %s",
                bad_lines,
                kept,
                extra={"spool": str(kept)},
            )
        else:
            self.path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)


def append_durably(path: Path, data: bytes) -> None:
    """Append `data` to `path` (made with its directory if missing) and fsync; raises OSError."""
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # a power loss must not take the new file's directory entry with it
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a file's creation, rename or removal in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
