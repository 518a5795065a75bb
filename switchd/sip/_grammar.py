"""Shared bits of RFC 3261 §25 grammar: tokens, quoted strings, generic params, comma lists.

Every function takes `where` (the header or element being parsed) so its error names the
place; errors are RemoteProtocolError with status_hint 400 and reason "Bad <where>".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from sys import intern

from ._errors import RemoteProtocolError

__all__ = [  # RUF022's isort-style order: constants, classes, functions
    "TOKEN", "TOKEN_PARAMS", "Params", "bad", "draft_class", "find_param", "format_params", "get_param",
    "check_token_param", "is_token", "parse_params", "slot_setters", "split_comma", "split_hostport", "split_params", "unquote",
]

Params = tuple[tuple[str, str | None], ...]
"""Parameters in order as (name, value) pairs; value None for a flag (``;lr``), quoted values
keep their quotes so they serialise unchanged."""

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
TOKEN_PARAMS = r"(?:;[A-Za-z0-9\-.!%*_+`'~=;]*)?"
"""Regex source of the commonest parameter list, ``;name=value;flag``, by its characters only:
';', '=' and token characters (no whitespace, no quotes). A character class is much cheaper for
the regex engine than the list's grammar; `split_params` checks the structure. Fast-path
regexes embed it (or a subset of its characters)."""
# Characters of a param list in the common case (no quotes, no whitespace): ';' '=' and the
# union of token, host and uri paramchar characters.
_PARAM_CHARS = re.compile(r"[;=A-Za-z0-9\-.!%*_+`'~\[\]:/&$]+")
_PARAM = re.compile(
    r"""\s*;\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;\s",?<>]+)\s*)?"""
)
_HOSTPORT = re.compile(r"([A-Za-z0-9][A-Za-z0-9.\-]*)(?::([0-9]{1,5}))?")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")


def is_token(text: str) -> bool:
    """True when `text` is an RFC 3261 token (most are letters and digits: checked without a regex)."""
    return (text.isalnum() and text.isascii()) or TOKEN.fullmatch(text) is not None


def check_token_param(params: Params, lname: str, where: str, whole: str) -> Params:
    """`params`, once sure that parameter `lname` (lower case), if present, has a token value.

    For the general parsers: a fast path's parameters are token characters by construction.
    RFC 3261 §25.1: ``tag-param = "tag" EQUAL token``, ``via-branch = "branch" EQUAL token``.
    """
    for name, value in params:
        if value is not None and name.lower() == lname and not is_token(value):
            raise bad(where, whole, f"{lname} {value!r} is not a token")
    return params


def slot_setters(cls: type, *names: str) -> list[Callable[[object, object], None]]:
    """Setters for the slots `names` of frozen class `cls` (for its own __init__)."""
    return [cls.__dict__[name].__set__ for name in names]


def draft_class(cls: type) -> type:
    """A plain class with exactly the slots of frozen, slotted class `cls`, to build its values.

    The parser builds several values per message, and building them is much of its cost: a frozen
    dataclass's __init__ goes through object.__setattr__ (~0.1 µs a field), a slot setter is a
    wrapper call (~0.05 µs), an attribute store on a plain slotted object is ~0.01 µs. So a
    parser fills a draft, then turns it into the value with ``draft.__class__ = cls`` (CPython
    allows it between classes with the same slots and base; it raises TypeError otherwise). The
    result is indistinguishable from ``cls(...)``. Every slot must be set before the switch.
    """
    slots = cls.__dict__["__slots__"]
    return type(f"{cls.__name__}Draft", (), {"__slots__": slots, "__module__": cls.__module__})


def bad(where: str, text: str, detail: str = "") -> RemoteProtocolError:
    """The error for a malformed `where` element whose text is `text`."""
    extra = f": {detail}" if detail else ""
    return RemoteProtocolError(f"malformed {where} {text!r}{extra}", reason=f"Bad {where}")


def parse_params(text: str, where: str, whole: str | None = None) -> Params:
    """Parse ``;name[=value]...`` (`text` starts at the first ';', may have LWS, or is empty).

    `whole` is the complete element the parameters belong to, quoted in errors.
    """
    if not text:
        return ()
    if text[0] == ";" and text.find(";", 1) < 0:  # the commonest case: one ;name=token
        name, eq, value = text[1:].partition("=")
        if name.isalnum() and text.isascii() and (not eq or value.isalnum()):
            return ((intern(name), value if eq else None),)  # names repeat: shared (see split_params)
    if whole is None:
        whole = text
    if _PARAM_CHARS.fullmatch(text):  # fast path: no quotes, no whitespace
        if text[0] != ";":
            raise bad(where, whole, "expected ';' before parameters")
        out: list[tuple[str, str | None]] = []
        for item in text[1:].split(";"):
            name, eq, value = item.partition("=")
            # _PARAM_CHARS left only token characters and "[]:/&$" to check in the name.
            if not name or (eq and (not value or "=" in value)) or not (
                name.isalnum() or TOKEN.fullmatch(name)
            ):
                raise bad(where, whole, f"bad parameter {item!r}")
            out.append((name, value if eq else None))
        return tuple(out)
    out = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        m = _PARAM.match(text, pos)
        if m is None:
            raise bad(where, whole, f"bad parameter at offset {pos}")
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    return tuple(out)


def split_params(text: str) -> Params | None:
    """The params of `text`, which a fast-path regex matched as `TOKEN_PARAMS` (or a subset);
    None when they are not ``;name[=value]`` items with non-empty names and values.

    Nothing else is checked: for text of those characters, this is exactly what `parse_params`
    returns, and None where it would raise.
    """
    if not text:
        return ()
    out: list[tuple[str, str | None]] = []
    for item in text[1:].split(";"):
        if "=" in item:
            name, _, value = item.partition("=")
            if not name or not value or "=" in value:
                return None
            out.append((intern(name), value))  # "tag", "branch", "transport" ...: one string, not one a message
        elif item:
            out.append((intern(item), None))
        else:
            return None
    return tuple(out)


def split_hostport(text: str, where: str, whole: str) -> tuple[str, int | None]:
    """(host, port) from ``host[:port]`` (IPv6 in brackets); `whole` is quoted in errors."""
    if text[:1] == "[":
        close = text.find("]") + 1
        host, port_text = text[:close], text[close:]
        if not _IPV6.fullmatch(host):
            raise bad(where, whole, f"bad IPv6 reference {host!r}")
        if port_text:
            if port_text[0] != ":":
                raise bad(where, whole, "junk after IPv6 reference")
            port_text = port_text[1:]
        else:
            return host, None
    else:
        m = _HOSTPORT.fullmatch(text)
        if m is None:
            raise bad(where, whole, f"bad host or port {text!r}")
        host, port_text = m.groups()
        if port_text is None:
            return host, None
    if port_text.isdigit() and port_text.isascii() and len(port_text) <= 5:
        port = int(port_text)
        if port <= 65535:
            return host, port
    raise bad(where, whole, f"bad port {port_text!r}")


def get_param(params: Params, name: str) -> str | None:
    """The value of parameter `name` (case-insensitive), '' for a flag, None when absent."""
    lname = name.lower()
    for key, value in params:
        if key == lname or key.lower() == lname:
            return "" if value is None else value
    return None


def find_param(params: Params, lname: str) -> str | None:
    """`get_param` for a name already in lower case (the accessors' names): no lower() per call."""
    for key, value in params:
        if key == lname or key.lower() == lname:
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
