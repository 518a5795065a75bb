"""JSON in and out: one encoder for every answer, and the checks on what a client sends.

Out: times are ISO 8601 in UTC with milliseconds and a ``Z`` ("2026-12-02T06:35:46.798Z"), money
(Decimal) a string so it stays exact, enums their value. (A CDR record is the JSON export's own,
`switchd.billing.cdr_json`, whose times end in ``+00:00``: the same instant, the CLI's spelling.)

In: a body must be a JSON object sent as ``application/json``; query times are ISO 8601 — a date
alone is midnight UTC, a time without an offset is UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from ._errors import ApiError, BadRequest

JSON = "application/json"


def time_text(value: datetime) -> str:
    """`value` as the API writes times: UTC, milliseconds, 'Z'."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return time_text(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"no JSON for {type(value).__name__}")


def dumps(value: object) -> bytes:
    """`value` as compact UTF-8 JSON (see the module docstring for times, money and enums)."""
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":")).encode()


def error_body(error: ApiError) -> bytes:
    """The body of an error answer."""
    return dumps({"error": {"code": error.code, "detail": error.detail}})


def media_type(content_type: str | None) -> str | None:
    """The media type of a Content-Type value, lower case, without parameters."""
    if content_type is None:
        return None
    return content_type.partition(";")[0].strip().lower()


def json_object(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The JSON object in a request `body`; 415 when not sent as JSON, 400 when not one object."""
    if media_type(content_type) != JSON:
        raise ApiError(415, "unsupported_media_type", f"send the body as {JSON}, not {content_type or 'nothing'}")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(value).__name__}")
    return value


def parse_time(name: str, text: str) -> datetime:
    """A query time: ISO 8601; a date is its midnight UTC, a naive time is UTC. BadRequest names `name`."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}={text!r} is not an ISO 8601 time (e.g. 2026-12-01 or "
                         "2026-12-01T08:00:00Z)") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    """BadRequest when `obj` has a key not in `allowed`."""
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise BadRequest(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"expected {', '.join(sorted(allowed))}")
