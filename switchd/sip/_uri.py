"""SIP and SIPS URIs (RFC 3261 §19.1, §25.1); other schemes (tel:, urn: ...) kept opaque.

Components are kept as written, escapes included (``%40`` stays ``%40``), so ``str(uri)``
reproduces an equivalent URI; the scheme is lower-cased. IPv6 hosts keep their brackets.
An opaque URI holds only the characters RFC 3986 allows in a URI (ASCII, no space or control);
a ``tel:`` URI and a SIP URI with ``user=phone`` must hold an RFC 3966 number (`_tel`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from sys import intern

from ._grammar import (
    Params,
    bad,
    draft_class,
    format_params,
    get_param,
    parse_params,
    split_hostport,
    split_params,
)
from ._tel import check_subscriber, is_phone

__all__ = ["COMMON", "SipUri", "common_uri", "parse_uri"]

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# Every character a SIP URI may hold: unreserved, reserved, escapes, IPv6 brackets.
_URI_CHARS = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/:@%\[\]]+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HEADER_PART = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|%[0-9A-Fa-f]{2})*")
# RFC 3986 §2: unreserved, reserved and "%"; the text after the scheme of any other URI.
_OPAQUE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# The commonest shape in one regex: sip[s]:[user@]host[:port][;name[=value]...], with only
# characters that need no further check: no escapes, password, IPv6 reference or URI headers,
# parameters of token characters that a URI allows (not '%' nor '`'; split_params checks their
# structure). Five groups, which `common_uri` takes; `_address` embeds it in its own fast path.
COMMON = (
    r"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,/]+)@)?([A-Za-z0-9][A-Za-z0-9.\-]*)(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-.!*_+'~=;]*)?)"
)
_COMMON = re.compile(COMMON)


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


_SipUriDraft = draft_class(SipUri)


def parse_uri(text: str, where: str = "URI") -> SipUri:
    """Parse `text` as a URI; raises RemoteProtocolError(400, "Bad <where>") when malformed."""
    m = _COMMON.fullmatch(text)
    if m is not None:
        uri = common_uri(*m.groups())
        if uri is not None:
            return uri
    return _parse_uri(text, where)  # which also says why, when it is malformed


def common_uri(scheme: str, user: str | None, host: str, port_text: str | None, params_text: str) -> SipUri | None:
    """The SipUri of the groups `COMMON` matched; None when the full grammar must decide (a port
    over 65535, parameters that are not ``;name[=value]``, ``user=phone``)."""
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            return None
    params = split_params(params_text) if params_text else ()  # a Request-URI rarely has any
    if params is None or (params and is_phone(params)):
        return None
    draft = _SipUriDraft()
    # Scheme and host repeat across messages (ours, a gateway's, a phone's): one string each, shared
    # by every URI of every call held, not one per URI parsed (issue 16: a held call's memory).
    draft.scheme = intern(scheme)
    draft.user = user
    draft.password = None
    draft.host = intern(host)
    draft.port = port
    draft.params = params
    draft.headers = ()
    draft.opaque = None
    draft.__class__ = SipUri
    uri: SipUri = draft
    return uri


def _parse_uri(text: str, where: str) -> SipUri:
    """`parse_uri` for any shape: the full RFC 3261 grammar, one component at a time."""
    scheme, colon, rest = text.partition(":")
    if scheme != "sip" and scheme != "sips":
        lowered = scheme.lower()
        if not colon or not _SCHEME.fullmatch(scheme):
            raise bad(where, text, "no scheme")
        if lowered != "sip" and lowered != "sips":
            if not _OPAQUE.fullmatch(rest):
                raise bad(where, text)
            if lowered == "tel":
                check_subscriber(rest, where, text)
            return SipUri(scheme=lowered, opaque=rest)
        scheme = lowered
    if not _URI_CHARS.fullmatch(rest):
        raise bad(where, text, "character not allowed in a SIP URI")
    if "%" in rest and _BAD_ESCAPE.search(rest):
        raise bad(where, text, "bad %-escape")
    user: str | None = None
    password: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, colon, pw = userinfo.partition(":")
        # user: unreserved / escaped / user-unreserved; password: no ';' '?' '/'
        if not user or "[" in userinfo or "]" in userinfo or "@" in rest:
            raise bad(where, text, "bad user part")
        if colon:
            if ";" in pw or "?" in pw or "/" in pw or ":" in pw:
                raise bad(where, text, "bad password")
            password = pw
    headers: tuple[tuple[str, str], ...] = ()
    if "?" in rest:
        rest, _, headers_text = rest.partition("?")
        pairs = []
        for item in headers_text.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq or not _HEADER_PART.fullmatch(name) or not _HEADER_PART.fullmatch(value):
                raise bad(where, text, f"bad URI header {item!r}")
            pairs.append((name, value))
        headers = tuple(pairs)
    hostport, semi, params_text = rest.partition(";")
    host, port = split_hostport(hostport, where, text)
    params = parse_params(semi + params_text, where, text) if semi else ()
    if params and is_phone(params):  # RFC 3261 §19.1.1: the user part is a telephone-subscriber
        if user is None:
            raise bad(where, text, "user=phone without a user part")
        check_subscriber(user, where, text)
    return SipUri(scheme, user, password, host, port, params, headers)
