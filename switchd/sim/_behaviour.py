"""What a simulated phone or gateway does with an INVITE, chosen by the dialled number's prefix.

A behaviour is a frozen value; `parse_behaviour` reads the compact spec the command line takes
(``name[:key=value,...]``) and `load_behaviours` a TOML file:

==========================================  =====================================================
spec                                        the callee
==========================================  =====================================================
``answer[:ring=S]``                         100, 180, then 200 after S s (default 1); the caller
                                            hangs up
``hangup[:ring=S,hold=H]``                  as answer, then sends BYE itself H s after the 200
``busy``                                    486 Busy Here
``reject[:code=N,retry_after=S]``           N (default 503), with Retry-After: S when given
``noanswer``                                180 and rings until CANCEL (then 200 and 487)
``drop[:after=S]``                          closes the TCP connection S s after the INVITE (0)
==========================================  =====================================================

A behaviours file::

    default = "answer:ring=0.5"

    [prefixes]
    "1555" = "busy"
    "44" = { behaviour = "reject", code = 503, retry_after = 30 }

The longest prefix of the dialled user part wins; no match takes the default.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

from ._errors import BehaviourError


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """180 Ringing, then 200 OK after `ring` seconds; with `hangup_after`, BYE that long after the 200."""

    ring: float = 1.0
    hangup_after: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Busy:
    """486 Busy Here at once."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """A final `code` (300-699) at once, with ``Retry-After: retry_after`` when given."""

    code: int = 503
    retry_after: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NeverAnswer:
    """180 Ringing, then nothing until the caller's CANCEL (200 to it, 487 to the INVITE)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Drop:
    """Close the TCP connection `after` seconds after the INVITE, answering nothing."""

    after: float = 0.0


Behaviour: TypeAlias = Answer | Busy | Reject | NeverAnswer | Drop


@dataclass(frozen=True, slots=True)
class Behaviours:
    """The behaviour for each dialled-number prefix, and the `default` for the rest."""

    default: Behaviour = field(default_factory=Answer)
    prefixes: Mapping[str, Behaviour] = field(default_factory=dict)

    def for_number(self, number: str) -> Behaviour:
        """The behaviour of the longest prefix of `number`, else the default."""
        for end in range(len(number), -1, -1):
            found = self.prefixes.get(number[:end])
            if found is not None:
                return found
        return self.default


def _number(spec: str, key: str, text: object, *, minimum: float = 0.0) -> float:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BehaviourError(f"behaviour {spec!r}: {key}={text!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise BehaviourError(f"behaviour {spec!r}: {key}={text!r} must be a number >= {minimum:g}")
    return value


def _integer(spec: str, key: str, text: object, low: int, high: int) -> int:
    if isinstance(text, bool) or not (isinstance(text, int) or (isinstance(text, str) and text.isdigit())):
        raise BehaviourError(f"behaviour {spec!r}: {key}={text!r} is not a whole number")
    value = int(text)
    if not low <= value <= high:
        raise BehaviourError(f"behaviour {spec!r}: {key}={value} is not in {low}-{high}")
    return value


_KEYS: dict[str, frozenset[str]] = {
    "answer": frozenset({"ring"}),
    "hangup": frozenset({"ring", "hold"}),
    "busy": frozenset(),
    "reject": frozenset({"code", "retry_after"}),
    "noanswer": frozenset(),
    "drop": frozenset({"after"}),
}


def _build(spec: str, name: str, params: Mapping[str, object]) -> Behaviour:
    allowed = _KEYS.get(name)
    if allowed is None:
        raise BehaviourError(f"behaviour {spec!r}: unknown behaviour {name!r} (one of {', '.join(_KEYS)})")
    unknown = sorted(set(params) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise BehaviourError(f"behaviour {spec!r}: unknown key {unknown[0]!r} for {name} (accepted: {accepted})")
    match name:
        case "answer":
            return Answer(ring=_number(spec, "ring", params.get("ring", 1.0)))
        case "hangup":
            return Answer(ring=_number(spec, "ring", params.get("ring", 1.0)),
                          hangup_after=_number(spec, "hold", params.get("hold", 5.0)))
        case "busy":
            return Busy()
        case "reject":
            retry = params.get("retry_after")
            return Reject(code=_integer(spec, "code", params.get("code", 503), 300, 699),
                          retry_after=None if retry is None else _integer(spec, "retry_after", retry, 0, 2**31 - 1))
        case "noanswer":
            return NeverAnswer()
    return Drop(after=_number(spec, "after", params.get("after", 0.0)))


def parse_behaviour(spec: str) -> Behaviour:
    """The behaviour a spec such as ``reject:code=503,retry_after=30`` names (see the module docstring).

    Raises BehaviourError naming the spec and the bad part.
    """
    name, _, rest = spec.strip().partition(":")
    params: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise BehaviourError(f"behaviour {spec!r}: {item!r} is not key=value")
        params[key.strip()] = value.strip()
    return _build(spec, name.strip().lower(), params)


def parse_route(text: str) -> tuple[str, Behaviour]:
    """A ``PREFIX=SPEC`` command-line rule as (prefix, behaviour); an empty prefix matches all."""
    prefix, equals, spec = text.partition("=")
    if not equals:
        raise BehaviourError(f"rule {text!r} is not PREFIX=BEHAVIOUR (e.g. 1555=busy)")
    return prefix.strip(), parse_behaviour(spec)


def behaviour_spec(behaviour: Behaviour) -> str:
    """The spec string of `behaviour`: ``parse_behaviour(behaviour_spec(b)) == b``."""
    match behaviour:
        case Answer(ring=ring, hangup_after=None):
            return f"answer:ring={ring:g}"
        case Answer(ring=ring, hangup_after=hold):
            return f"hangup:ring={ring:g},hold={hold:g}"
        case Busy():
            return "busy"
        case Reject(code=code, retry_after=None):
            return f"reject:code={code}"
        case Reject(code=code, retry_after=retry_after):
            return f"reject:code={code},retry_after={retry_after}"
        case NeverAnswer():
            return "noanswer"
        case Drop(after=after):
            return f"drop:after={after:g}"
    raise TypeError(f"not a behaviour: {behaviour!r}")


def _from_toml(value: object, where: str) -> Behaviour:
    if isinstance(value, str):
        try:
            return parse_behaviour(value)
        except BehaviourError as exc:
            raise BehaviourError(f"{where}: {exc}") from None
    if isinstance(value, dict):
        params = dict(value)
        name = params.pop("behaviour", None)
        if not isinstance(name, str):
            raise BehaviourError(f"{where}: a table needs behaviour = \"<name>\"")
        try:
            return _build(f"{name} {params}", name.lower(), params)
        except BehaviourError as exc:
            raise BehaviourError(f"{where}: {exc}") from None
    raise BehaviourError(f"{where}: expected a spec string or a table, got {type(value).__name__}")


def load_behaviours(path: Path | str) -> Behaviours:
    """The behaviours in TOML file `path` (``default`` and ``[prefixes]``; see the module docstring).

    Raises BehaviourError naming the file and key.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BehaviourError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BehaviourError(f"{path}: {exc}") from exc
    unknown = sorted(set(raw) - {"default", "prefixes"})
    if unknown:
        raise BehaviourError(f"{path}: {unknown[0]}: unknown key (expected default and [prefixes])")
    default = _from_toml(raw["default"], f"{path}: default") if "default" in raw else Answer()
    table = raw.get("prefixes", {})
    if not isinstance(table, dict):
        raise BehaviourError(f"{path}: prefixes: expected a table")
    prefixes = {str(prefix): _from_toml(value, f"{path}: prefixes.{prefix}") for prefix, value in table.items()}
    return Behaviours(default, prefixes)
