"""SIP and SIPS URIs (RFC 3261 §19.1, §25.1); other schemes (tel:, urn: ...) kept opaque.

Components are kept as written, escapes included (``%40`` stays ``%40``), so ``str(uri)``
reproduces an equivalent URI; the scheme is lower-cased. IPv6 hosts keep their brackets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._grammar import Params, bad, format_params, get_param, parse_params

__all__ = ["SipUri", "parse_uri"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):")
# userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
_USER = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
_PASSWORD = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*")
# hostport [ uri-parameters ] [ headers ]; host = hostname / IPv4address / IPv6reference
_HOSTPORT = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?)(?::([0-9]{1,5}))?"
    r"((?:;[^?]*)?)(?:\?(.*))?",
    re.S,
)
_HEADER_PART = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
_OPAQUE = re.compile(r"[^\x00-\x20\x7f<>\"]+")


@dataclass(frozen=True, slots=True)
class SipUri:
    """A parsed URI; for schemes other than sip/sips only `scheme` and `opaque` are set.

    `params` are the uri-parameters in order (``transport``, ``lr``, ``maddr`` ...), `headers`
    the ``?h=v&...`` part as (name, value) pairs.
    """

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None

    def param(self, name: str) -> str | None:
        """The value of uri-parameter `name` (case-insensitive); '' for a flag, None if absent."""
        return get_param(self.params, name)

    @property
    def is_sip(self) -> bool:
        """True for sip: and sips: URIs (the only ones with user/host/port)."""
        return self.opaque is None

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += [":", self.password]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += [":", str(self.port)]
        if self.params:
            parts.append(format_params(self.params))
        if self.headers:
            parts += ["?", "&".join(f"{k}={v}" for k, v in self.headers)]
        return "".join(parts)


def parse_uri(text: str, where: str = "URI") -> SipUri:
    """Parse `text` as a URI; raises RemoteProtocolError(400, "Bad <where>") when malformed."""
    m = _SCHEME.match(text)
    if m is None:
        raise bad(where, text, "no scheme")
    scheme = m.group(1).lower()
    rest = text[m.end():]
    if scheme != "sip" and scheme != "sips":
        if not _OPAQUE.fullmatch(rest):
            raise bad(where, text)
        return SipUri(scheme=scheme, opaque=rest)
    user: str | None = None
    password: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, colon, pw = userinfo.partition(":")
        if not _USER.fullmatch(user):
            raise bad(where, text, "bad user part")
        if colon:
            if not _PASSWORD.fullmatch(pw):
                raise bad(where, text, "bad password")
            password = pw
    hp = _HOSTPORT.fullmatch(rest)
    if hp is None:
        raise bad(where, text, "bad host or port")
    host, port_text, params_text, headers_text = hp.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise bad(where, text, f"port {port} out of range")
    params: Params = ()
    if params_text:
        if '"' in params_text:
            raise bad(where, text, "quote in uri-parameters")
        params = parse_params(params_text, where)
    headers: tuple[tuple[str, str], ...] = ()
    if headers_text is not None:
        pairs = []
        for item in headers_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq or not _HEADER_PART.fullmatch(name) or not _HEADER_PART.fullmatch(value):
                raise bad(where, text, f"bad URI header {item!r}")
            pairs.append((name, value))
        headers = tuple(pairs)
    return SipUri(scheme, user, password, host, port, params, headers)
