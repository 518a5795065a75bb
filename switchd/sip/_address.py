"""name-addr / addr-spec with header parameters (RFC 3261 §20.10, §20.20, §20.39, §25.1).

Used by From, To, Contact, Route, Record-Route, Reply-To. With angle brackets, parameters after
``>`` belong to the header (``;tag=``) and those inside to the URI; without them (addr-spec
form) everything after the first ``;`` belongs to the header. A tag is a token (§25.1).
"""

from __future__ import annotations

import re

from ._grammar import (
    TOKEN_PARAMS,
    Params,
    bad,
    check_token_param,
    draft_class,
    format_params,
    get_param,
    parse_params,
    slot_setters,
)
from ._uri import COMMON, SipUri, common_uri, parse_uri

__all__ = ["NameAddr", "parse_name_addr", "parse_party"]

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_TOKENS = re.compile(r"[A-Za-z0-9\-.!%*_+`'~ \t]+")
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
# The commonest shape in one regex: an optional quoted display name without escapes, one space,
# <a URI of `_uri.COMMON`'s shape>, header parameters of token characters. From and To are parsed
# on every message with their URIs (the edge checks them), so `parse_party` builds both at once.
_COMMON = re.compile(rf'(?:"([^"\\]*)" )?<{COMMON}>({TOKEN_PARAMS})')


class NameAddr:
    """An address with an optional display name and header parameters (``;tag=``, ``;expires=``).

    An immutable value, like a frozen dataclass: ``NameAddr(display_name, uri, params=())``,
    compared and hashed by those three fields. When parsed from a header, the URI is kept as
    text and parsed on the first read of `.uri` (reading a tag needs no URI), so `.uri` raises
    RemoteProtocolError for a malformed URI in a parsed header.
    """

    __slots__ = ("_uri", "_where", "display_name", "params")
    display_name: str | None
    params: Params
    _uri: SipUri | str
    _where: str

    def __init__(self, display_name: str | None, uri: SipUri, params: Params = ()) -> None:
        _set_display_name(self, display_name)
        _set_uri(self, uri)
        _set_params(self, params)
        _set_where(self, "address")

    @property
    def uri(self) -> SipUri:
        """The address's URI (parsed on first read when it came from a header)."""
        uri = self._uri
        if isinstance(uri, str):
            uri = parse_uri(uri, self._where)
            _set_uri(self, uri)
        return uri

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 §19.3), None when absent."""
        for key, value in self.params:  # find_param inlined: From and To tags are read for every message
            if key == "tag" or key.lower() == "tag":
                return value or None
        return None

    def param(self, name: str) -> str | None:
        """The value of header parameter `name` (case-insensitive); '' for a flag, None if absent."""
        return get_param(self.params, name)

    def with_tag(self, tag: str) -> NameAddr:
        """A copy with its ``tag`` parameter set to `tag` (replacing any)."""
        params = tuple(p for p in self.params if p[0].lower() != "tag") + (("tag", tag),)
        return NameAddr(self.display_name, self.uri, params)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"NameAddr is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NameAddr):
            return NotImplemented
        return (self.display_name, self.uri, self.params) == (other.display_name, other.uri, other.params)

    def __hash__(self) -> int:
        return hash((self.display_name, self.uri, self.params))

    def __repr__(self) -> str:
        return f"NameAddr(display_name={self.display_name!r}, uri={self.uri!r}, params={self.params!r})"

    def __str__(self) -> str:
        params = format_params(self.params)
        if self.display_name is None:
            return f"<{self.uri}>{params}"
        escaped = self.display_name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{self.uri}>{params}'


_set_display_name, _set_uri, _set_params, _set_where = slot_setters(
    NameAddr, "display_name", "_uri", "params", "_where"
)
_NameAddrDraft = draft_class(NameAddr)


def parse_party(text: str, where: str) -> NameAddr:
    """Parse a From or To value (`where`), its URI included: the edge checks both on every message.

    The commonest shape is parsed in one regex, URI and all, for little more than finding the
    URI costs; any other goes through `parse_name_addr` and then its URI is read.
    """
    m = _COMMON.fullmatch(text)
    if m is not None:
        display, scheme, user, host, port, uri_params, params_text = m.groups()
        uri = common_uri(scheme, user, host, port, uri_params)
        if uri is not None:  # parameters of token characters: parsed as the general path parses them
            draft = _NameAddrDraft()
            draft.display_name = display
            draft._uri = uri
            draft.params = parse_params(params_text, where, text) if params_text else ()
            draft._where = where
            draft.__class__ = NameAddr
            address: NameAddr = draft
            return address
    address = parse_name_addr(text, where)
    address.uri  # noqa: B018 - parses and keeps the URI
    return address


def parse_name_addr(text: str, where: str = "address") -> NameAddr:
    """Parse one name-addr or addr-spec with its parameters; RemoteProtocolError when malformed."""
    display: str | None = None
    if text[:1] == '"':
        close = text.find('"', 1)
        if close > 0 and text.find("\\", 1, close) < 0:  # no escapes: the next quote closes it
            display = text[1:close]
            if text.startswith(" <", close + 1):  # the usual single space
                rest = text[close + 2:]
            else:
                rest = text[close + 1:].lstrip(" \t")
                if rest[:1] != "<":
                    raise bad(where, text, "expected '<' after the display name")
        else:
            m = _QUOTED.match(text)
            if m is None:
                raise bad(where, text, "unterminated quoted display name")
            display = _ESCAPED.sub(r"\1", m.group(1))
            rest = text[m.end():].lstrip(" \t")
            if rest[:1] != "<":
                raise bad(where, text, "expected '<' after the display name")
    else:
        lt = text.find("<")
        if lt < 0:
            return _addr_spec(text, where)
        if lt:
            tokens = text[:lt].rstrip(" \t")
            if tokens:
                if not _TOKENS.fullmatch(tokens):
                    raise bad(where, text, "display name must be tokens or a quoted string")
                display = tokens
        rest = text[lt:] if lt else text
    gt = rest.find(">")
    if gt < 0:
        raise bad(where, text, "no '>' closing the address")
    uri_text = rest[1:gt].strip(" \t")
    if not uri_text:
        raise bad(where, text, "empty URI")
    params_text = rest[gt + 1:]
    draft = _NameAddrDraft()
    draft.display_name = display
    draft._uri = uri_text  # parsed on first read of .uri
    draft.params = check_token_param(parse_params(params_text, where, text), "tag", where, text) if params_text else ()
    draft._where = where
    draft.__class__ = NameAddr
    address: NameAddr = draft
    return address


def _addr_spec(text: str, where: str) -> NameAddr:
    """addr-spec form: no display name, no brackets; parameters after the first ';' are the header's."""
    uri_text, semi, params_text = text.strip().partition(";")
    uri_text = uri_text.rstrip()
    if "," in uri_text or "?" in uri_text:
        raise bad(where, text, "',' or '?' in an addr-spec needs angle brackets")
    uri = parse_uri(uri_text, where)
    params = check_token_param(parse_params(semi + params_text, where, text), "tag", where, text) if semi else ()
    return NameAddr(None, uri, params)
