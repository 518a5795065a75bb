"""Request and Response, with typed header accessors parsed on first use.

Strategy: the parser only splits header lines; a header's grammar is parsed the first time its
accessor is read, and the result is cached in the `Headers` (any change to the headers drops the
cache). A malformed header therefore raises RemoteProtocolError from its accessor, naming the
header; `switchd.sip.parse_message` and `Connection` read the headers every transaction needs
(Via, From, To, Call-ID, CSeq) before handing a message out, so those never raise afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ._address import NameAddr, parse_name_addr
from ._auth import Challenge, Credentials, parse_challenge, parse_credentials
from ._codes import Method
from ._cseq import CSeq, parse_cseq
from ._errors import RemoteProtocolError
from ._headers import Headers
from ._retry_after import RetryAfter, parse_retry_after
from ._uri import SipUri
from ._via import Via, parse_via

__all__ = ["Request", "Response"]

T = TypeVar("T")


def _missing(name: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"missing {name} header", reason=f"Missing {name}")


class _Accessors:
    """Typed views of the headers shared by Request and Response."""

    __slots__ = ()
    headers: Headers

    def _cached(self, key: str, compute: Callable[[], T]) -> T:
        cache = self.headers._cache
        try:
            value: T = cache[key]
        except KeyError:
            value = cache[key] = compute()
        return value

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise _missing(name)
        return value

    @property
    def call_id(self) -> str:
        """Call-ID (RFC 3261 §20.8); RemoteProtocolError when missing or not a single word."""
        return self._cached("Call-ID", self._parse_call_id)

    def _parse_call_id(self) -> str:
        value = self._required("Call-ID")
        if not value or " " in value or "\t" in value:
            raise RemoteProtocolError(f"malformed Call-ID {value!r}", reason="Bad Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        """CSeq (RFC 3261 §20.16)."""
        return self._cached("CSeq", lambda: parse_cseq(self._required("CSeq")))

    @property
    def from_(self) -> NameAddr:
        """From (RFC 3261 §20.20); its `.tag` is the remote/local tag of a dialog."""
        return self._cached("From", lambda: parse_name_addr(self._required("From"), "From"))

    @property
    def to(self) -> NameAddr:
        """To (RFC 3261 §20.39)."""
        return self._cached("To", lambda: parse_name_addr(self._required("To"), "To"))

    @property
    def vias(self) -> list[Via]:
        """Every Via value, topmost first (RFC 3261 §20.42); RemoteProtocolError when none."""
        return self._cached("Via", self._parse_vias)

    def _parse_vias(self) -> list[Via]:
        values = self.headers.get_all("Via")
        if not values:
            raise _missing("Via")
        return [parse_via(v) for v in values]

    @property
    def top_via(self) -> Via:
        """The topmost Via: the one naming the previous hop (§18.2.2) and the transaction branch."""
        return self.vias[0]

    @property
    def contact(self) -> list[NameAddr]:
        """Contact addresses in order (empty when absent); RemoteProtocolError for ``*``.

        ``Contact: *`` is legal only in a REGISTER that removes all bindings; check
        `contact_is_star` first where that is acceptable.
        """
        return self._cached("Contact", self._parse_contact)

    def _parse_contact(self) -> list[NameAddr]:
        values = self.headers.get_all("Contact")
        if values == ["*"]:
            raise RemoteProtocolError("Contact: * where an address is required", reason="Bad Contact")
        return [parse_name_addr(v, "Contact") for v in values]

    @property
    def contact_is_star(self) -> bool:
        """True for ``Contact: *`` (RFC 3261 §10.2.2)."""
        return self.headers.get_all("Contact") == ["*"]

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 §20.22, 0..255), None when absent."""
        return self._cached("Max-Forwards", self._parse_max_forwards)

    def _parse_max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        if not value.isdigit() or not value.isascii() or int(value) > 255:
            raise RemoteProtocolError(f"malformed Max-Forwards {value!r}", reason="Bad Max-Forwards")
        return int(value)

    @property
    def content_type(self) -> str | None:
        """Content-Type as written (``application/sdp``), None when absent."""
        return self.headers.get("Content-Type")

    @property
    def routes(self) -> list[NameAddr]:
        """Route values, topmost first (empty when absent)."""
        return self._cached("Route", lambda: self._addresses("Route"))

    @property
    def record_routes(self) -> list[NameAddr]:
        """Record-Route values, topmost first (empty when absent)."""
        return self._cached("Record-Route", lambda: self._addresses("Record-Route"))

    def _addresses(self, name: str) -> list[NameAddr]:
        return [parse_name_addr(v, name) for v in self.headers.get_all(name)]

    @property
    def retry_after(self) -> RetryAfter | None:
        """Retry-After (RFC 3261 §20.33), None when absent."""
        return self._cached("Retry-After", self._parse_retry_after)

    def _parse_retry_after(self) -> RetryAfter | None:
        value = self.headers.get("Retry-After")
        return None if value is None else parse_retry_after(value)

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


@dataclass(slots=True)
class Response(_Accessors):
    """A SIP response. `status` is an int (use `Status` to name it), `reason` the phrase sent."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
