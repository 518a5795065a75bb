"""Authentication headers (RFC 3261 §20.7, §20.27, §20.28, §20.44; RFC 2617 digest).

WWW-Authenticate / Proxy-Authenticate carry a `Challenge`, Authorization / Proxy-Authorization
`Credentials`: both are ``scheme param=value, param="quoted", ...``. One header field holds one
challenge or credentials (§7.3.1: these headers are never comma-combined).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._grammar import TOKEN, Params, bad, get_param, unquote

__all__ = ["Challenge", "Credentials", "parse_challenge", "parse_credentials"]

_SCHEME = re.compile(r"\s*([A-Za-z0-9\-.!%*_+`'~]+)(?:\s+|$)")
_AUTH_PARAM = re.compile(
    r"""\s*([A-Za-z0-9\-.!%*_+`'~]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(?:,|$)""", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class _AuthValue:
    scheme: str
    params: Params = ()

    def param(self, name: str) -> str | None:
        """Parameter `name` (case-insensitive) with quotes removed; None when absent."""
        value = get_param(self.params, name)
        return None if value is None else unquote(value)

    @property
    def realm(self) -> str | None:
        """The ``realm`` parameter, unquoted."""
        return self.param("realm")

    @property
    def nonce(self) -> str | None:
        """The ``nonce`` parameter, unquoted."""
        return self.param("nonce")

    def __str__(self) -> str:
        return f"{self.scheme} " + ", ".join(f"{k}={v}" for k, v in self.params)


class Challenge(_AuthValue):
    """A WWW-Authenticate or Proxy-Authenticate value; quoted values keep their quotes in `params`."""

    __slots__ = ()


class Credentials(_AuthValue):
    """An Authorization or Proxy-Authorization value; quoted values keep their quotes in `params`."""

    __slots__ = ()


def _parse(text: str, where: str) -> tuple[str, Params]:
    m = _SCHEME.match(text)
    if m is None:
        raise bad(where, text, "no auth scheme")
    scheme = m.group(1)
    params: list[tuple[str, str | None]] = []
    pos = m.end()
    end = len(text.rstrip())
    while pos < end:
        p = _AUTH_PARAM.match(text, pos)
        if p is None or not TOKEN.fullmatch(p.group(1)):
            raise bad(where, text, f"bad auth-param at offset {pos}")
        params.append((p.group(1), p.group(2)))
        pos = p.end()
    return scheme, tuple(params)


def parse_challenge(text: str, where: str = "WWW-Authenticate") -> Challenge:
    """Parse a WWW-/Proxy-Authenticate value; RemoteProtocolError when malformed."""
    return Challenge(*_parse(text, where))


def parse_credentials(text: str, where: str = "Authorization") -> Credentials:
    """Parse an Authorization / Proxy-Authorization value; RemoteProtocolError when malformed."""
    return Credentials(*_parse(text, where))
