"""What the switch refuses in a request that parsed: the dispatcher's checks, before anything starts.

`switchd.sip` has already refused what is not SIP (bad UTF-8, control characters, malformed
Call-ID, tags, branch, From, To, tel: numbers). What is left is what *this* switch does not
serve, checked in RFC 3261 §8.2's order:

===========================================  ====================================================
every request but ACK                        Request-URI scheme not sip, sips or tel → 416 (§8.2.2.1)
every request but ACK and CANCEL             Require / Proxy-Require with an option tag we do not
                                             support → 420 with ``Unsupported`` (§8.2.2.3); a tag
                                             that is not a token → 400
a new INVITE, then                           Contact missing or malformed, Record-Route malformed
                                             → 400 (it could not make a dialog, §12.1.1);
                                             Max-Forwards 0 → 483 (§16.3 step 3); a Request-URI
                                             with no number to dial (``sip:host``) → 484; a
                                             Call-ID, From tag or caller longer than its CDR
                                             column → 400, a number longer → 414
===========================================  ====================================================

The CDR's columns bound what a call may carry (PostgreSQL refuses a longer value, and a CDR that
cannot be written is a CDR lost): their widths are read from `switchd.billing.Cdr` itself.

`refusal` and `new_call_refusal` return the `Refusal` to answer, or None. A new INVITE that passes
both is one a CallSession can start on without any check of its own (its ``init`` cannot raise on
it): the dispatcher runs them before admission, so a refused INVITE gets its final answer and
nothing else — no 100 Trying, no session, no CDR.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchd.billing import Cdr
from switchd.sip import Method, RemoteProtocolError, Request, dialled_number, is_token

__all__ = ["SERVED_SCHEMES", "SUPPORTED_OPTIONS", "Refusal", "call_parties", "new_call_refusal", "refusal"]

SUPPORTED_OPTIONS: frozenset[str] = frozenset()
"""Option tags (RFC 3261 §19.2, lower case) this switch supports: none yet (no 100rel, no timer)."""

SERVED_SCHEMES = frozenset({"sip", "sips", "tel"})
"""Request-URI schemes the switch serves (§8.2.2.1); `tel:` is routed on its number (RFC 3966)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A final answer to a request the switch will not serve, and why (for the log)."""

    status: int
    reason: str | None
    why: str
    headers: tuple[tuple[str, str], ...] = ()


def refusal(request: Request) -> Refusal | None:
    """416 or 420 (or 400 for a malformed Require) for `request`, or None; never for an ACK."""
    method = request.method
    if method == Method.ACK:
        return None
    scheme = request.uri.scheme
    if scheme not in SERVED_SCHEMES:
        return Refusal(416, None, f"Request-URI scheme {scheme!r} is not served")
    if method == Method.CANCEL:  # §8.2.2.3: Require is not checked on a CANCEL (nor an ACK)
        return None
    required = request.headers.get_all("Require") + request.headers.get_all("Proxy-Require")
    if not required:
        return None
    for tag in required:
        if not is_token(tag):
            return Refusal(400, "Bad Require", f"option tag {tag!r} is not a token")
    unsupported = [tag for tag in required if tag.lower() not in SUPPORTED_OPTIONS]
    if unsupported:
        listed = ", ".join(dict.fromkeys(unsupported))  # each once, in order
        return Refusal(420, None, f"unsupported option tag(s) {listed}", (("Unsupported", listed),))
    return None


def _width(column: str) -> int:
    length = getattr(Cdr.__table__.c[column].type, "length", None)  # a String(n) column
    assert isinstance(length, int), f"Cdr.{column} has no length"
    return length


# (what, CDR column, status, reason) of each text a call's CDR stores from its INVITE.
_STORED = (("Call-ID", "call_id", 400, "Call-ID Too Long"), ("From tag", "a_from_tag", 400, "From Tag Too Long"),
           ("caller", "caller_raw", 400, "From Too Long"), ("number", "callee_raw", 414, None))
_WIDTHS = {column: _width(column) for _, column, _, _ in _STORED}


def call_parties(invite: Request) -> tuple[str, str]:
    """(caller, callee) of a call, as its CDR records them: the dialled numbers of the From URI and
    the Request-URI (`switchd.sip.dialled_number`), or the URI itself when it dials none."""
    caller = invite.from_.uri
    return dialled_number(caller) or str(caller), dialled_number(invite.uri) or str(invite.uri)


def new_call_refusal(invite: Request) -> Refusal | None:
    """The answer to a new INVITE that `refusal` passed and the switch will not start a call for, or None."""
    try:
        contacts = invite.contact
        if not contacts:
            return Refusal(400, "Missing Contact", "an INVITE without a Contact cannot make a dialog (§8.1.1.8)")
        contacts[0].uri  # noqa: B018 - the dialog's remote target: parsed now, not in the session
        for route in invite.record_routes:
            route.uri  # noqa: B018 - the dialog's route set
        number = dialled_number(invite.uri)
    except RemoteProtocolError as exc:
        return Refusal(exc.status_hint, exc.reason, str(exc))
    if invite.max_forwards == 0:  # RFC 3261 §16.3 step 3: it may go no further
        return Refusal(483, None, "Max-Forwards is 0")
    if not number:
        return Refusal(484, None, f"Request-URI {invite.uri} has no number to dial")
    caller, _ = call_parties(invite)
    texts = (invite.call_id, invite.from_.tag or "", caller, number)
    for text, (what, column, status, reason) in zip(texts, _STORED, strict=True):
        if len(text) > _WIDTHS[column]:
            return Refusal(status, reason, f"{what} of {len(text)} characters, over the CDR's {_WIDTHS[column]}")
    return None
