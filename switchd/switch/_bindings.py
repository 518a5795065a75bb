"""What a REGISTER does to a user's bindings (RFC 3261 §10.3), as pure functions.

`read_register` checks a REGISTER whose sender is already authenticated and turns it into a
`RegisterRequest`; `apply_register` applies it to the user's current bindings, all or nothing;
`contact_headers` writes what the 200 lists. Times are the caller's clock (trio's), in seconds.

The rules, in §10.3's order:

* step 6 ``Contact: *``: only with ``Expires: 0`` and no other Contact (else 400); it removes every
  binding — except that a binding refreshed by this very registration (same Call-ID) with a
  CSeq not lower than this one's means the request is out of order: nothing changes, 500.
* step 7, each Contact: its ``expires`` parameter, else the Expires header, else
  ``default_expires``. Zero removes the binding; below ``min_expires`` the whole request is
  refused with 423 Interval Too Brief and ``Min-Expires`` (§10.3 step 7, §20.23); above
  ``max_expires`` it is granted ``max_expires``. A Contact already bound (compared by scheme,
  user, host and port) is replaced unless its Call-ID is the same and the CSeq is not higher
  (out of order: 500, nothing changes). ``q`` (0 to 1, three decimals; 1 when absent) orders the
  contacts for a call, highest first, the most recently registered first among equals.
* More than ``max_contacts`` bindings after the update: 403, nothing changes.
* Checked before any of that: the Contact is a sip: or sips: URI no longer than the database
  keeps (1024 characters), with a host the outbound ACL allows (403 otherwise; see `_acl`).

A REGISTER without Contact is a query: nothing changes and the 200 lists the bindings.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from switchd.billing import Binding as BindingRow
from switchd.sip import RemoteProtocolError, Request, SipUri

from ._acl import Acl

__all__ = [
    "Binding", "RegisterLimits", "RegisterRefusal", "RegisterRequest", "RequestedContact", "alive",
    "apply_register", "contact_headers", "q_text", "read_register",
]

_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_DELTA = re.compile(r"[0-9]{1,10}")
MAX_CONTACT_LENGTH: int = BindingRow.__table__.c["contact"].type.length  # type: ignore[attr-defined]
_MAX_DELTA = 2**32 - 1  # RFC 3261 §20.19: delta-seconds; larger is taken as this


@dataclass(frozen=True, slots=True)
class RegisterLimits:
    """The registrar's intervals (seconds) and how many contacts a user may have."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError(f"RegisterLimits: need 0 < min_expires <= default_expires <= max_expires, got "
                             f"{self.min_expires}, {self.default_expires}, {self.max_expires}")
        if self.max_contacts < 1:
            raise ValueError(f"RegisterLimits: max_contacts must be >= 1, not {self.max_contacts}")


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of a user: where its calls go until `expires_at`.

    `contact` is the Contact URI as the phone wrote it (calls are sent to exactly that), `uri` the
    same parsed; `q` in thousandths; `transport` how the phone reaches us and is reached ("tcp",
    "udp" …: the Contact's transport parameter, else the one its REGISTER came over); `source`
    the address the REGISTER came from.
    """

    contact: str
    uri: SipUri
    q: int
    expires_at: float
    call_id: str
    cseq: int
    transport: str
    source: str
    registered_at: float

    @property
    def key(self) -> tuple[str, str | None, str, int | None]:
        """What makes two Contacts the same binding: scheme, user, host (any case) and port."""
        return _key(self.uri)

    def expires_in(self, now: float) -> int:
        """Whole seconds left at `now` (what the 200 lists), at least 0."""
        return max(0, math.ceil(self.expires_at - now - 1e-9))


@dataclass(frozen=True, slots=True)
class RequestedContact:
    """One Contact of a REGISTER: its URI, and the expiry and q it asks for (None: not given)."""

    contact: str
    uri: SipUri
    expires: int | None
    q: int | None


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """A checked REGISTER: whose, what it asks, and the Call-ID/CSeq that order it."""

    user: str
    domain: str  # the AOR's host, lower case
    star: bool
    contacts: tuple[RequestedContact, ...]
    expires: int | None  # the Expires header; None: absent
    call_id: str
    cseq: int
    transport: str
    source: str


@dataclass(frozen=True, slots=True)
class RegisterRefusal:
    """The error answer to a REGISTER, and why (for the log)."""

    status: int
    reason: str | None
    why: str
    headers: tuple[tuple[str, str], ...] = ()


def _key(uri: SipUri) -> tuple[str, str | None, str, int | None]:
    return uri.scheme, uri.user, uri.host.lower(), uri.port


def q_text(q: int) -> str:
    """A q-value in thousandths as RFC 3261 §20.10 writes it: 1000 → "1", 500 → "0.5", 5 → "0.005"."""
    if q >= 1000:
        return "1"
    return f"0.{q:03d}".rstrip("0").rstrip(".") if q else "0"


def _delta(text: str | None) -> int | None:
    """delta-seconds (digits) capped at 2**32-1; ValueError for anything else."""
    if text is None:
        return None
    text = text.strip()
    if not _DELTA.fullmatch(text):
        raise ValueError(f"{text!r} is not a number of seconds")
    return min(int(text), _MAX_DELTA)


def _qvalue(text: str | None) -> int | None:
    if text is None:
        return None
    if not _QVALUE.fullmatch(text):
        raise ValueError(f"q {text!r} is not a q-value (0 to 1, three decimals at most)")
    whole, _, decimals = text.partition(".")
    return int(whole) * 1000 + int((decimals + "000")[:3])


def read_register(request: Request, source: str, acl: Acl) -> RegisterRequest | RegisterRefusal:
    """Check a REGISTER (To, Expires, every Contact) and read what it asks; a refusal says why."""
    aor = request.to.uri
    if not aor.is_sip or not aor.user:
        return RegisterRefusal(400, "Bad To", f"To {aor} names no user to register")
    try:
        expires = _delta(request.headers.get("Expires"))
    except ValueError as exc:
        return RegisterRefusal(400, "Bad Expires", f"Expires: {exc}")
    star = request.contact_is_star
    contacts: list[RequestedContact] = []
    if star:
        if expires != 0:
            return RegisterRefusal(400, "Bad Contact", "Contact: * needs Expires: 0 (RFC 3261 §10.2.2)")
    elif request.headers.get_all("Contact"):
        try:
            addresses = request.contact
            for address in addresses:
                contacts.append(_requested(address.uri, address.param("expires"), address.param("q")))
        except (RemoteProtocolError, ValueError) as exc:
            return RegisterRefusal(400, "Bad Contact", f"Contact: {exc}")
        for wanted in contacts:
            if not wanted.uri.is_sip or not wanted.uri.host:
                return RegisterRefusal(400, "Bad Contact", f"Contact {wanted.contact} is not a sip: or sips: URI")
            if len(wanted.contact) > MAX_CONTACT_LENGTH:
                return RegisterRefusal(400, "Contact Too Long",
                                       f"a Contact of {len(wanted.contact)} characters, over {MAX_CONTACT_LENGTH}")
            refused = acl.contact_refusal(wanted.uri.host)
            if refused is not None:
                return RegisterRefusal(403, None, refused)
    via = request.top_via
    return RegisterRequest(user=aor.user, domain=aor.host.lower(), star=star, contacts=tuple(contacts), expires=expires,
                           call_id=request.call_id, cseq=request.cseq.seq, transport=via.transport.lower(),
                           source=source)


def _requested(uri: SipUri, expires: str | None, q: str | None) -> RequestedContact:
    return RequestedContact(str(uri), uri, _delta(expires), _qvalue(q))


def alive(bindings: tuple[Binding, ...], now: float) -> tuple[Binding, ...]:
    """The bindings that have not expired at `now` (an expired binding is never used)."""
    return tuple(b for b in bindings if b.expires_at > now)


def _order(bindings: list[Binding]) -> tuple[Binding, ...]:
    return tuple(sorted(bindings, key=lambda b: (-b.q, -b.registered_at)))


def _out_of_order(existing: Binding, request: RegisterRequest) -> bool:
    return existing.call_id == request.call_id and request.cseq <= existing.cseq


def apply_register(current: tuple[Binding, ...], request: RegisterRequest, *, now: float,
                   limits: RegisterLimits) -> tuple[Binding, ...] | RegisterRefusal:
    """The user's bindings after `request` (best first), or why it changes nothing (see the module docstring)."""
    current = alive(current, now)
    if request.star:
        stale = [b for b in current if _out_of_order(b, request)]
        if stale:
            return RegisterRefusal(500, "Out Of Order", f"Contact: * with CSeq {request.cseq} not after "
                                                        f"{stale[0].cseq} of the same Call-ID")
        return ()
    by_key = {b.key: b for b in current}
    for wanted in request.contacts:
        expires = next(e for e in (wanted.expires, request.expires, limits.default_expires) if e is not None)
        if 0 < expires < limits.min_expires:
            return RegisterRefusal(423, None, f"{wanted.contact} asked for {expires}s, under {limits.min_expires}s",
                                   (("Min-Expires", str(limits.min_expires)),))
        key = _key(wanted.uri)
        existing = by_key.get(key)
        if existing is not None and _out_of_order(existing, request):
            return RegisterRefusal(500, "Out Of Order", f"{wanted.contact}: CSeq {request.cseq} not after "
                                                        f"{existing.cseq} of the same Call-ID")
        if expires == 0:
            by_key.pop(key, None)
            continue
        transport = (wanted.uri.param("transport") or request.transport).lower()
        by_key[key] = Binding(wanted.contact, wanted.uri, 1000 if wanted.q is None else wanted.q,
                              now + min(expires, limits.max_expires), request.call_id, request.cseq, transport,
                              request.source, now)
    if len(by_key) > max(limits.max_contacts, len(current)):
        return RegisterRefusal(403, "Too Many Contacts", f"{len(by_key)} contacts, over {limits.max_contacts}")
    return _order(list(by_key.values()))


def contact_headers(bindings: tuple[Binding, ...], now: float) -> list[tuple[str, str]]:
    """The Contact headers of the 200: every live binding with the seconds it has left (and its q)."""
    headers = []
    for b in alive(bindings, now):
        q = "" if b.q == 1000 else f";q={q_text(b.q)}"
        headers.append(("Contact", f"<{b.contact}>;expires={b.expires_in(now)}{q}"))
    return headers
