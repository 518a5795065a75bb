"""Helpers for the tests that prove a parser's fast path answers exactly as its general path.

A fast path is a regex for the commonest shape of an element plus code that trusts what it
matched; anything else falls back to the general parser. The tests compare the two on the
common shapes and on near misses: one character the fast path may refuse, put into each part.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator

from hypothesis import strategies as st

from switchd.sip import RemoteProtocolError

# Every printable ASCII character, the whitespace LWS may hold, and some non-ASCII.
CHARACTERS = string.printable + "\x00\x7f\xa0\xe9\u2028"
# Characters a fast path does not take in some part (inserted by `mostly`).
NEAR = ":@;=%?[]`\"'<>, /\\\t"


def outcome(parse: Callable[[str], object], text: str) -> tuple[object, ...]:
    """What `parse` makes of `text`: the value with its repr and the types of its slots, or the error."""
    try:
        value = parse(text)
    except RemoteProtocolError as exc:
        return ("error", str(exc), exc.reason, exc.status_hint, exc.framing_lost)
    slots = getattr(type(value), "__slots__", ())
    return ("value", type(value), value, repr(value), [type(getattr(value, name)) for name in slots])


def near_misses(template: str, parts: dict[str, str]) -> Iterator[str]:
    """`template` filled with `parts`, then with each of CHARACTERS put at the start, inside and
    at the end of each part in turn (inserted, and in place of the part's second character)."""
    yield template.format(**parts)
    for name, part in parts.items():
        for char in CHARACTERS:
            for changed in (char + part, part[:1] + char + part[1:], part[:1] + char + part[2:], part + char):
                yield template.format(**{**parts, name: changed})


def _insert(text: str, position: int, char: str) -> str:
    position %= len(text) + 1
    return text[:position] + char + text[position:]


def mostly(fast: st.SearchStrategy[str], near: str = NEAR) -> st.SearchStrategy[str]:
    """`fast`'s strings, and a third of the time one of them with a character of `near` inserted."""
    missed = st.builds(_insert, fast, st.integers(0, 20), st.sampled_from(list(near)))
    return st.one_of(fast, fast, missed)


# hostport (RFC 3261 §25.1) as the fast paths see it: short names, and ports in and out of range.
HOSTS = mostly(st.text("aZ09", min_size=1, max_size=2) | st.text("aZ09.-", min_size=1, max_size=8))
PORTS = st.none() | st.integers(0, 65535) | st.integers(65536, 99999)


def hostport_params(host: str, port: int | None, params: list[tuple[str, str | None]]) -> str:
    """``host[:port][;name[=value]]...``: the tail a URI and a Via share."""
    text = host if port is None else f"{host}:{port}"
    return text + "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)
