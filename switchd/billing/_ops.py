"""Write operations: what a request becomes inside the store, and its spool (JSON) form.

An Op is a kind and the column values it writes: a CDR step keyed by the CDR's idempotency key,
or the node's heartbeat (table node_runs, keyed by node and run). The writer applies ops to the
database; during an outage the spool keeps them as JSON lines and they are applied later,
unchanged. Every op is idempotent (see _writer), so applying one twice is harmless.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any

from sqlalchemy import Enum as SAEnum
from sqlalchemy import String

from ._models import Cdr, CdrStatus, NodeRun, cdr_key
from ._numbers import NumberingPlan, normalize_or_none
from ._requests import CdrAnswer, CdrClose, CdrOpen, CdrProgress
from ._types import Money, UtcDateTime, to_utc_ms

log = logging.getLogger(__name__)


class OpKind(StrEnum):
    OPEN = "open"
    PROGRESS = "progress"
    ANSWER = "answer"
    CLOSE = "close"
    HEARTBEAT = "heartbeat"


OPEN_FIELDS = (
    "key",
    "node",
    "call_id",
    "attempt",
    "a_from_tag",
    "a_to_tag",
    "account",
    "caller_raw",
    "caller",
    "callee_raw",
    "callee",
    "b_attempts",
    "setup_at",
    "rate_plan",
    "rated",
    "status",
    "created_at",
    "updated_at",
)
LEG_FIELDS = ("b_call_id", "gateway", "route_id", "route_prefix", "b_attempts")
PROGRESS_FIELDS = ("key", "progress_at", *LEG_FIELDS, "updated_at")
ANSWER_FIELDS = ("key", "answer_at", "a_to_tag", *LEG_FIELDS, "updated_at")
CLOSE_FIELDS = (
    "key",
    "end_at",
    "answer_at",
    "disposition",
    "sip_code",
    "sip_reason",
    "hangup_cause",
    "hangup_by",
    *LEG_FIELDS,
    "reinvites",
    "hold_ms",
    "status",
    "updated_at",
)
# Fields a kind gained after spools were first written: a spooled line without one means "not known".
_ADDED_LATER = {OpKind.CLOSE: ("reinvites", "hold_ms")}


HEARTBEAT_FIELDS = ("key", "node", "run_started", "host", "pid", "last_beat")


@dataclass(frozen=True, slots=True)
class Op:
    """One write: `kind` and the column values (always including "key")."""

    kind: OpKind
    values: dict[str, Any]

    @property
    def key(self) -> str:
        key: str = self.values["key"]
        return key


# Text columns and their lengths. A longer value (a SIP Call-ID or From URI has no length limit)
# is cut to fit rather than refused: a CDR with a shortened reason beats no CDR, and a value the
# database would reject would otherwise stall the spool replay behind it. The key is computed
# from the full Call-ID, so identity is not affected.
_TEXT_LIMITS = {
    column.key: column.type.length
    for column in Cdr.__table__.columns
    if isinstance(column.type, String) and column.type.length and not isinstance(column.type, SAEnum)
}


# Per kind, the limited columns its values carry (an op's dict has exactly its kind's fields).
_CHECKS = {
    kind: tuple((name, _TEXT_LIMITS[name]) for name in fields if name in _TEXT_LIMITS)
    for kind, fields in (
        (OpKind.OPEN, OPEN_FIELDS),
        (OpKind.PROGRESS, PROGRESS_FIELDS),
        (OpKind.ANSWER, ANSWER_FIELDS),
        (OpKind.CLOSE, CLOSE_FIELDS),
    )
}


def _op(kind: OpKind, values: dict[str, Any]) -> Op:
    for name, limit in _CHECKS[kind]:
        value = values[name]
        if value.__class__ is str and len(value) > limit:
            log.warning("CDR field %s cut to %d characters", name, limit, extra={"cdr_key": values["key"]})
            values[name] = value[:limit]
    return Op(kind, values)


def _leg(request: CdrProgress | CdrAnswer | CdrClose) -> dict[str, Any]:
    return {
        "b_call_id": request.b_call_id,
        "gateway": request.gateway,
        "route_id": request.route_id,
        "route_prefix": request.route_prefix,
        "b_attempts": request.b_attempts,
    }


def op_for(
    request: CdrOpen | CdrProgress | CdrAnswer | CdrClose,
    *,
    node: str,
    default_plan: str,
    numbering: NumberingPlan,
    now: datetime,
) -> Op:
    """The op that carries out `request` on this node."""
    key = cdr_key(node, request.call_id, request.attempt)
    match request:
        case CdrOpen():
            return _op(
                OpKind.OPEN,
                {
                    "key": key,
                    "node": node,
                    "call_id": request.call_id,
                    "attempt": request.attempt,
                    "a_from_tag": request.a_from_tag,
                    "a_to_tag": request.a_to_tag,
                    "account": request.account,
                    "caller_raw": request.caller,
                    "caller": normalize_or_none(request.caller, numbering),
                    "callee_raw": request.callee,
                    "callee": normalize_or_none(request.callee, numbering),
                    "b_attempts": 0,
                    "setup_at": to_utc_ms(request.setup_at),
                    "rate_plan": request.rate_plan or default_plan,
                    "rated": False,
                    "status": CdrStatus.OPEN,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        case CdrProgress():
            return _op(
                OpKind.PROGRESS,
                {"key": key, "progress_at": to_utc_ms(request.at), **_leg(request), "updated_at": now},
            )
        case CdrAnswer():
            return _op(
                OpKind.ANSWER,
                {
                    "key": key,
                    "answer_at": to_utc_ms(request.at),
                    "a_to_tag": request.a_to_tag,
                    **_leg(request),
                    "updated_at": now,
                },
            )
        case CdrClose():
            return _op(
                OpKind.CLOSE,
                {
                    "key": key,
                    "end_at": to_utc_ms(request.end_at),
                    "answer_at": None if request.answer_at is None else to_utc_ms(request.answer_at),
                    "disposition": request.disposition,
                    "sip_code": request.sip_code,
                    "sip_reason": request.sip_reason,
                    "hangup_cause": request.hangup_cause,
                    "hangup_by": request.hangup_by,
                    **_leg(request),
                    "reinvites": request.reinvites,
                    "hold_ms": request.hold_ms,
                    "status": CdrStatus.CLOSED,
                    "updated_at": now,
                },
            )
    raise TypeError(f"billing: {request!r} is not a CDR request")


def heartbeat_op(node: str, run_started: datetime, host: str, pid: int, at: datetime) -> Op:
    """The op that records that this run of `node` was alive `at`."""
    return Op(
        OpKind.HEARTBEAT,
        {
            "key": f"heartbeat:{node}",
            "node": node,
            "run_started": run_started,
            "host": host,
            "pid": pid,
            "last_beat": to_utc_ms(at),
        },
    )


def _json_value(value: object) -> object:
    match value:
        case datetime():
            return value.isoformat()
        case Enum():
            return value.value
        case Decimal():
            return str(value)
    return value


def encode_op(op: Op, *, ascii_only: bool = False) -> str:
    """`op` as one line of JSON (no newline); `ascii_only` escapes every non-ASCII character.

    Raises TypeError for a value JSON cannot carry; text that is not valid Unicode (a lone
    surrogate) passes here only with `ascii_only`, and fails when the line is encoded otherwise.
    """
    return json.dumps(
        {"op": op.kind.value, "v": {k: _json_value(v) for k, v in op.values.items()}},
        separators=(",", ":"),
        ensure_ascii=ascii_only,
    )


def _decoder(column: Any) -> Any:
    if isinstance(column.type, UtcDateTime):
        return datetime.fromisoformat
    if isinstance(column.type, Money):
        return Decimal
    enum_class = getattr(column.type, "enum_class", None)
    return enum_class


_CDR_DECODERS = {column.key: _decoder(column) for column in Cdr.__table__.columns}
_DECODERS = {
    **dict.fromkeys(OpKind, _CDR_DECODERS),
    OpKind.HEARTBEAT: {"key": None} | {column.key: _decoder(column) for column in NodeRun.__table__.columns},
}


def decode_op(line: str) -> Op:
    """The op encoded in `line`; ValueError (or a subclass) if it is not one."""
    raw = json.loads(line)
    if not isinstance(raw, dict) or not isinstance(raw.get("v"), dict):
        raise ValueError(f"not a spooled op: {line[:80]!r}")  # noqa: TRY004 (a bad line, not a bad call)
    kind = OpKind(str(raw.get("op")))
    decoders = _DECODERS[kind]
    values: dict[str, Any] = {}
    for name, value in raw["v"].items():
        if name not in decoders:
            raise ValueError(f"unknown field {name!r} in spooled {kind} op")
        decode = decoders[name]
        try:
            values[name] = value if value is None or decode is None else decode(value)
        except (TypeError, ValueError, ArithmeticError) as exc:  # ArithmeticError: Decimal("x")
            raise ValueError(f"spooled {kind} op: bad {name} {value!r}") from exc
    if not isinstance(values.get("key"), str):
        raise ValueError("spooled op without a key")  # noqa: TRY004 (a bad line, not a bad call)
    for name in _ADDED_LATER.get(kind, ()):
        values.setdefault(name, None)
    return Op(kind, values)
