"""Request and Response, with typed header accessors parsed on first use.

Strategy: the parser only splits header lines; a header's grammar is parsed the first time its
accessor is read. The headers every message needs (Via, From, To, Call-ID, CSeq, Contact,
Max-Forwards) are cached in the `Headers` (any change to the headers drops the cache); the
rarer ones are parsed on every read. A malformed header therefore raises RemoteProtocolError from its accessor, naming the
header; `switchd.sip.parse_message` and `Connection` read the headers every transaction needs
(Via, From, To, Call-ID, CSeq) before handing a message out, so those never raise afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ._address import NameAddr, parse_name_addr, parse_party
from ._auth import Challenge, Credentials, parse_challenge, parse_credentials
from ._codes import Method
from ._cseq import CSeq, parse_cseq
from ._errors import RemoteProtocolError
from ._headers import Headers
from ._retry_after import RetryAfter, parse_retry_after
from ._uri import SipUri
from ._via import Via, parse_via

__all__ = ["Request", "Response", "parse_call_id", "parse_from", "parse_max_forwards", "parse_to"]

_UNSET: Any = object()
# RFC 3261 §25.1: callid = word [ "@" word ]; word = 1*(alphanum / "-" / "." / "!" / "%" / "*" /
# "_" / "+" / "`" / "'" / "~" / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" /
# "?" / "{" / "}")
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID = re.compile(rf"{_WORD}(?:@{_WORD})?")


def _missing(name: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"missing {name} header", reason=f"Missing {name}")


def parse_call_id(text: str) -> str:
    """A Call-ID value (RFC 3261 §20.8, §25.1: ``word ["@" word]``, ASCII, no whitespace)."""
    if _CALL_ID.fullmatch(text) is None:
        raise RemoteProtocolError(f"malformed Call-ID {text!r}", reason="Bad Call-ID")
    return text


def parse_max_forwards(text: str) -> int:
    """A Max-Forwards value (RFC 3261 §20.22: 0..255; leading zeros allowed)."""
    if text.isdigit() and text.isascii():
        value = int(text)
        if value <= 255:
            return value
    raise RemoteProtocolError(f"malformed Max-Forwards {text!r}", reason="Bad Max-Forwards")


def parse_from(text: str) -> NameAddr:
    """A From value, its URI parsed and its tag a token (RFC 3261 §20.20, §19.3).

    The URI is parsed now rather than on first read of `.uri`: a CallSession or a CDR reads it,
    and must never be the one to find it malformed.
    """
    return parse_party(text, "From")


def parse_to(text: str) -> NameAddr:
    """A To value, its URI parsed and its tag a token (RFC 3261 §20.39, §19.3)."""
    return parse_party(text, "To")


DIALOG_HEADERS = frozenset({"via", "from", "to", "call-id", "cseq", "contact", "record-route", "route"})
"""What `trim` keeps by default: the headers a dialog, a CANCEL or an ACK is built from (RFC 3261 §12.1, §9.1, §17.1.1.3)."""


class _Accessors:
    """Typed views of the headers shared by Request and Response.

    Each accessor parses its header on first use and caches the result in ``headers._cache``
    (keyed by the lower-case header name), which any change to the headers clears.
    """

    __slots__ = ()
    headers: Headers

    def _required(self, key: str, name: str) -> str:
        value = self.headers._first(key)
        if value is None:
            raise _missing(name)
        return value

    @property
    def call_id(self) -> str:
        """Call-ID (RFC 3261 §20.8); RemoteProtocolError when missing or not a single word."""
        cache = self.headers._cache
        value: str | None = cache.get("call-id")
        if value is None:
            value = cache["call-id"] = parse_call_id(self._required("call-id", "Call-ID"))
        return value

    @property
    def cseq(self) -> CSeq:
        """CSeq (RFC 3261 §20.16)."""
        cache = self.headers._cache
        value: CSeq | None = cache.get("cseq")
        if value is None:
            value = cache["cseq"] = parse_cseq(self._required("cseq", "CSeq"))
        return value

    @property
    def from_(self) -> NameAddr:
        """From (RFC 3261 §20.20); its `.tag` is the remote/local tag of a dialog."""
        cache = self.headers._cache
        value: NameAddr | None = cache.get("from")
        if value is None:
            value = cache["from"] = parse_from(self._required("from", "From"))
        return value

    @property
    def to(self) -> NameAddr:
        """To (RFC 3261 §20.39)."""
        cache = self.headers._cache
        value: NameAddr | None = cache.get("to")
        if value is None:
            value = cache["to"] = parse_to(self._required("to", "To"))
        return value

    @property
    def vias(self) -> list[Via]:
        """Every Via value, topmost first (RFC 3261 §20.42); RemoteProtocolError when none."""
        cache = self.headers._cache
        value: list[Via] | None = cache.get("via")
        if value is None:
            values = self.headers._all("via")
            if not values:
                raise _missing("Via")
            value = cache["via"] = [parse_via(v) for v in values]
        return value

    @property
    def top_via(self) -> Via:
        """The topmost Via: the one naming the previous hop (§18.2.2) and the transaction branch."""
        vias: list[Via] | None = self.headers._cache.get("via")
        return (self.vias if vias is None else vias)[0]

    @property
    def contact(self) -> list[NameAddr]:
        """Contact addresses in order (empty when absent); RemoteProtocolError for ``*``.

        ``Contact: *`` is legal only in a REGISTER that removes all bindings; check
        `contact_is_star` first where that is acceptable.
        """
        cache = self.headers._cache
        value: list[NameAddr] | None = cache.get("contact")
        if value is None:
            values = self.headers._all("contact")
            if len(values) != 1:
                value = cache["contact"] = [parse_name_addr(v, "Contact") for v in values]
            elif values[0] == "*":
                raise RemoteProtocolError("Contact: * where an address is required",
                                          reason="Bad Contact")
            else:  # the usual single address, without a comprehension
                value = cache["contact"] = [parse_name_addr(values[0], "Contact")]
        return value

    @property
    def contact_is_star(self) -> bool:
        """True for ``Contact: *`` (RFC 3261 §10.2.2)."""
        return self.headers._all("contact") == ["*"]

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 §20.22, 0..255), None when absent."""
        cache = self.headers._cache
        value: int | None = cache.get("max-forwards", _UNSET)
        if value is _UNSET:
            text = self.headers._first("max-forwards")
            value = cache["max-forwards"] = None if text is None else parse_max_forwards(text)
        return value

    @property
    def content_type(self) -> str | None:
        """Content-Type as written (``application/sdp``), None when absent."""
        return self.headers._first("content-type")

    @property
    def routes(self) -> list[NameAddr]:
        """Route values, topmost first (empty when absent)."""
        return [parse_name_addr(v, "Route") for v in self.headers.get_all("Route")]

    @property
    def record_routes(self) -> list[NameAddr]:
        """Record-Route values, topmost first (empty when absent)."""
        return [parse_name_addr(v, "Record-Route") for v in self.headers.get_all("Record-Route")]

    @property
    def retry_after(self) -> RetryAfter | None:
        """Retry-After (RFC 3261 §20.33), None when absent."""
        text = self.headers._first("retry-after")
        return None if text is None else parse_retry_after(text)

    @property
    def www_authenticate(self) -> list[Challenge]:
        """WWW-Authenticate challenges, one per header field."""
        return [parse_challenge(v, "WWW-Authenticate") for v in self.headers.get_all("WWW-Authenticate")]

    @property
    def proxy_authenticate(self) -> list[Challenge]:
        """Proxy-Authenticate challenges, one per header field."""
        return [parse_challenge(v, "Proxy-Authenticate")
                for v in self.headers.get_all("Proxy-Authenticate")]

    @property
    def authorization(self) -> list[Credentials]:
        """Authorization credentials, one per header field."""
        return [parse_credentials(v, "Authorization") for v in self.headers.get_all("Authorization")]

    @property
    def proxy_authorization(self) -> list[Credentials]:
        """Proxy-Authorization credentials, one per header field."""
        return [parse_credentials(v, "Proxy-Authorization")
                for v in self.headers.get_all("Proxy-Authorization")]


@dataclass(slots=True)
class Request(_Accessors):
    """A SIP request. `method` is a `Method` when known, else the extension method's token."""

    method: Method | str
    uri: SipUri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def branch(self) -> str | None:
        """The top Via's branch: the transaction id (RFC 3261 §17.2.3)."""
        return self.top_via.branch

    def trim(self, keep: frozenset[str] = DIALOG_HEADERS) -> None:
        """Drop the body and every header but `keep` (lower-case names), keeping what was parsed of those.

        For a message kept after its transaction ended only to read a dialog's identity from (a late
        2xx of another fork, its final status): a held call then holds less of it than everything it
        carried. Its other headers read as absent from then on, and it no longer serialises as it
        was sent or received.
        """
        self.headers._keep(keep)
        self.body = b""


@dataclass(slots=True)
class Response(_Accessors):
    """A SIP response. `status` is an int (use `Status` to name it), `reason` the phrase sent."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def trim(self, keep: frozenset[str] = DIALOG_HEADERS) -> None:
        """As `Request.trim`: the body and every header but `keep` dropped; the status stays."""
        self.headers._keep(keep)
        self.body = b""
