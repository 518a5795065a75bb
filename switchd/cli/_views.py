"""What the API answers, read into typed records the renderers can trust.

JSON is the untyped boundary: each reader takes what the contract promises and turns a missing
or mistyped field into a neutral value (None, 0, "") instead of an exception, so a daemon of
another version, or a bug on its side, costs a blank cell, never a traceback. Formatting helpers
for times, rates and durations shared by the commands live here too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._client import JsonObject


def text(obj: JsonObject, key: str) -> str | None:
    """obj[key] if it is a string (numbers are shown as text too), else None."""
    value = obj.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def number(obj: JsonObject, key: str) -> float | None:
    """obj[key] if it is a finite number, else None."""
    value = obj.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def integer(obj: JsonObject, key: str) -> int:
    """obj[key] if it is an integer, else 0."""
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def flag(obj: JsonObject, key: str) -> bool:
    """obj[key] if it is a boolean, else False."""
    return obj.get(key) is True


def child(obj: JsonObject, key: str) -> JsonObject:
    """obj[key] if it is an object, else {}."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def children(obj: JsonObject, key: str) -> list[JsonObject]:
    """The objects in the list obj[key] (anything else in it is left out)."""
    value = obj.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def counts(obj: JsonObject, key: str) -> dict[str, int]:
    """obj[key] as {name: count}, for counters by name (restarts, rejections)."""
    return {str(k): v for k, v in child(obj, key).items() if isinstance(v, int) and not isinstance(v, bool)}


# --- the supervision tree -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessView:
    """One process of GET /tree. `calls` is the count of a supervisor whose call sessions the API
    summarised ({"count": N}) rather than listed in full; None elsewhere."""

    pid: str
    name: str | None
    kind: str
    child_id: str | None
    restarts: int
    mailbox: int
    status: str
    children: tuple[ProcessView, ...]
    calls: int | None

    @property
    def label(self) -> str:
        return self.name or self.child_id or self.pid

    @classmethod
    def read(cls, obj: JsonObject) -> ProcessView:
        summary = obj.get("calls")
        calls = integer(summary, "count") if isinstance(summary, dict) else None
        return cls(
            pid=text(obj, "pid") or "?", name=text(obj, "name"), kind=text(obj, "kind") or "",
            child_id=text(obj, "child_id"), restarts=integer(obj, "restarts"),
            mailbox=integer(obj, "mailbox"),
            status=text(obj, "status") or "", children=tuple(cls.read(c) for c in children(obj, "children")),
            calls=calls,
        )

    def walk(self) -> list[ProcessView]:
        """This process and every process under it, depth first."""
        found = [self]
        for kid in self.children:
            found.extend(kid.walk())
        return found


def read_tree(body: JsonObject) -> list[ProcessView]:
    """The top-level processes of a GET /tree answer."""
    return [ProcessView.read(p) for p in children(body, "processes")]


def process_count(roots: Sequence[ProcessView]) -> int:
    """Processes in the tree, with summarised call sessions counted by their number."""
    total = 0
    for root in roots:
        for process in root.walk():
            total += 1
            if process.calls is not None:
                total += max(0, process.calls - len(process.children))
    return total


# --- formatting -------------------------------------------------------------------------------------------


def sip_style(label: str) -> str:
    """The rich style of a SIP message's first words: requests cyan, 1xx yellow, 2xx green, others red."""
    code = label.split(" ", 1)[0]
    if not code.isdigit():
        return "cyan"
    return {"1": "yellow", "2": "green"}.get(code[0], "red")


def duration(seconds: float | None) -> str:
    """'1h 02m 05s', '3m 20s', '4.2s'; '-' for None."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def millis(seconds: float | None) -> str:
    """Seconds as '12.3 ms'; '-' for None."""
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from the API ('…Z' included) as an aware datetime; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # 3.11 reads a trailing 'Z' as UTC
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def clock(value: Any) -> str:
    """An API time as 'HH:MM:SS.mmm' UTC; '' if it is not a time."""
    parsed = parse_time(value)
    return "" if parsed is None else parsed.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
