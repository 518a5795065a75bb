"""Shared bits of RFC 3261 §25 grammar: tokens, quoted strings, generic params, comma lists.

Every function takes `where` (the header or element being parsed) so its error names the
place; errors are RemoteProtocolError with status_hint 400 and reason "Bad <where>".
"""

from __future__ import annotations

import re

from ._errors import RemoteProtocolError

__all__ = ["Params", "TOKEN", "bad", "format_params", "get_param", "parse_params", "split_comma",
           "unquote"]

Params = tuple[tuple[str, str | None], ...]
"""Parameters in order as (name, value) pairs; value None for a flag (``;lr``), quoted values
keep their quotes so they serialise unchanged."""

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# gen-value = token / host / quoted-string; host adds "[" ":" "]" for IPv6. Param-value chars of
# URI params (paramchar) are a superset that adds "/" "&" "$" and escapes; accept them all here.
_VALUE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]:/&$=]+")
_PARAM = re.compile(
    r"""\s*;\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;\s",?<>]+)\s*)?"""
)


def bad(where: str, text: str, detail: str = "") -> RemoteProtocolError:
    """The error for a malformed `where` element whose text is `text`."""
    extra = f": {detail}" if detail else ""
    return RemoteProtocolError(f"malformed {where} {text!r}{extra}", reason=f"Bad {where}")


def parse_params(text: str, where: str) -> Params:
    """Parse ``;name[=value]...`` (the text starts at the first ';' or is empty/whitespace)."""
    if not text or text.isspace():
        return ()
    if '"' not in text:  # fast path: no quoted values, so ';' always separates
        first, _, rest = text.partition(";")
        if first.strip():
            raise bad(where, text, "expected ';' before parameters")
        out: list[tuple[str, str | None]] = []
        for item in rest.split(";"):
            name, eq, value = item.partition("=")
            name = name.strip()
            if not TOKEN.fullmatch(name):
                raise bad(where, text, f"bad parameter name {name!r}")
            if eq:
                value = value.strip()
                if not _VALUE.fullmatch(value):
                    raise bad(where, text, f"bad value for parameter {name!r}")
                out.append((name, value))
            else:
                out.append((name, None))
        return tuple(out)
    out = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _PARAM.match(text, pos)
        if m is None:
            raise bad(where, text, f"bad parameter at offset {pos}")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return tuple(out)


def get_param(params: Params, name: str) -> str | None:
    """The value of parameter `name` (case-insensitive), '' for a flag, None when absent."""
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return "" if value is None else value
    return None


def format_params(params: Params) -> str:
    """``;a=b;c`` for `params`."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def unquote(text: str) -> str:
    """The content of quoted-string `text` (quotes removed, backslash escapes resolved)."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def split_comma(value: str) -> list[str]:
    """Split a comma-separated header value, never inside quotes or angle brackets.

    Empty elements (``a,,b``) are dropped, as RFC 7230 §7 allows for list headers.
    """
    if "," not in value:
        return [value] if value else []
    if '"' not in value and "<" not in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if in_quotes:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quotes = False
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            part = value[start:i].strip()
            if part:
                parts.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        parts.append(part)
    return parts
