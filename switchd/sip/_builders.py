"""Messages built from other messages: responses (§8.2.6), the ACK to a non-2xx (§17.1.1.3), CANCEL (§9.1);
and a new request outside any dialog (§8.1.1), such as the INVITE a B2BUA sends on its B-leg.

In-dialog requests (BYE, re-INVITE, the ACK to a 2xx; §12.2.1.1, §13.2.2.4, §15) depend on dialog
state and are built by `Dialog.make_request`.

Header values are copied as the peer wrote them (the header text, not a re-serialisation of the
parsed form), so a response echoes Via, From, Call-ID and CSeq exactly as they came in.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._address import NameAddr, parse_name_addr
from ._codes import Method, phrase_for
from ._errors import LocalProtocolError, RemoteProtocolError
from ._headers import Headers
from ._ids import new_branch, new_call_id, new_tag
from ._message import Request, Response
from ._uri import SipUri, parse_uri

DEFAULT_MAX_FORWARDS = 70
"""RFC 3261 §8.1.1.6: the Max-Forwards a UAC SHOULD start with."""


def make_request(
    method: Method | str,
    uri: SipUri | str,
    *,
    from_: NameAddr | str,
    to: NameAddr | str,
    sent_by: str,
    transport: str = "TCP",
    contact: NameAddr | str | None = None,
    call_id: str | None = None,
    cseq: int = 1,
    branch: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Request:
    """A new request outside any dialog (RFC 3261 §8.1.1), e.g. a B-leg INVITE or an OPTIONS ping.

    `from_` gets a fresh tag unless it has one; `to` is used as given (no tag). `sent_by` is our
    ``host[:port]`` for the one Via, with `branch` (fresh by default) and `transport`. `call_id`
    defaults to a fresh one at the host of `sent_by`. An INVITE needs a `contact` (§8.1.1.8).
    Max-Forwards is 70; `headers` are appended (Content-Type with a body).

    Raises LocalProtocolError for an INVITE without a contact, a CSeq out of range (§8.1.1.5), or
    an address or URI that does not parse.
    """
    if method == Method.INVITE and contact is None:
        raise LocalProtocolError("make_request: an INVITE needs a Contact (§8.1.1.8)")
    if not 0 <= cseq < 2**31:
        raise LocalProtocolError(f"make_request: CSeq {cseq} is not below 2**31 (§8.1.1.5)")
    try:
        request_uri = parse_uri(uri, "Request-URI") if isinstance(uri, str) else uri
        from_addr = parse_name_addr(from_, "From") if isinstance(from_, str) else from_
        to_addr = parse_name_addr(to, "To") if isinstance(to, str) else to
    except RemoteProtocolError as exc:
        raise LocalProtocolError(f"make_request: {exc}") from exc
    if from_addr.tag is None:
        from_addr = from_addr.with_tag(new_tag())
    out = Headers()
    out.add("Via", f"SIP/2.0/{transport} {sent_by};branch={branch or new_branch()}")
    out.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS))
    out.add("From", str(from_addr))
    out.add("To", str(to_addr))
    out.add("Call-ID", call_id or new_call_id(sent_by.rpartition(":")[0] if _has_port(sent_by) else sent_by))
    out.add("CSeq", f"{cseq} {method}")
    if contact is not None:
        out.add("Contact", str(contact))
    for name, value in headers:
        out.add(name, value)
    return Request(method, request_uri, out, body)


def _has_port(sent_by: str) -> bool:
    head, colon, tail = sent_by.rpartition(":")
    return bool(colon) and tail.isdigit() and not head.endswith(":")  # not a bare IPv6 address


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """The response `status` to `request`, per RFC 3261 §8.2.6.

    Via (all, in order), From, Call-ID and CSeq are copied; To is copied and gets `to_tag`
    unless the request's To already has a tag (§8.2.6.2; a different `to_tag` is then an error).
    A 100 copies Timestamp (§8.2.6.1). A 101-299 to an INVITE copies Record-Route (§12.1.1), so a
    dialog-creating response carries the route set back. `headers` are appended in order (e.g.
    Contact, Content-Type); `reason` defaults to the status's phrase. The serialiser writes
    Content-Length.

    Raises LocalProtocolError if `status` is not in 100-699 or the request lacks a header the
    response must copy.
    """
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"cannot build a response with status {status}: not in 100-699 (§7.2)")
    out = Headers()
    for via in request.headers.get_all("Via"):
        out.add("Via", via)
    if "Via" not in out:
        raise LocalProtocolError(f"cannot answer {request.method}: the request has no Via")
    out.add("From", _required(request, "From"))
    to = _required(request, "To")
    if to_tag is not None:
        existing = request.to.tag
        if existing is None:
            to = f"{to};tag={to_tag}"
        elif existing != to_tag:
            raise LocalProtocolError(
                f"cannot answer with To tag {to_tag!r}: the request's To already has tag {existing!r}"
            )
    out.add("To", to)
    out.add("Call-ID", _required(request, "Call-ID"))
    out.add("CSeq", _required(request, "CSeq"))
    if status == 100:
        for timestamp in request.headers.get_all("Timestamp"):
            out.add("Timestamp", timestamp)
    elif status < 300 and request.method == Method.INVITE:
        for record_route in request.headers.get_all("Record-Route"):
            out.add("Record-Route", record_route)
    for name, value in headers:
        out.add(name, value)
    return Response(status, reason if reason is not None else phrase_for(status), out, body)


def make_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """The ACK to a 300-699 final response to `invite`, per RFC 3261 §17.1.1.3.

    Same Request-URI, Call-ID, From, CSeq number and Route set as the INVITE; To from the response
    (with its tag); one Via, the INVITE's top Via, so the ACK belongs to the INVITE transaction
    (same branch). The INVITE client transaction sends it; the TU never has to.
    """
    _check_invite(invite, "an ACK for a non-2xx")
    if response.status < 300:
        raise LocalProtocolError(
            f"make_ack_for_non2xx: a {response.status} is ACKed by the dialog (§13.2.2.4), not here"
        )
    return _same_transaction_request(invite, Method.ACK, to=_required(response, "To"))


def make_cancel(invite: Request) -> Request:
    """The CANCEL for `invite`, per RFC 3261 §9.1.

    Same Request-URI, Call-ID, To (no tag: CANCEL is not in a dialog), From, CSeq number and Route
    set as the INVITE; one Via, the INVITE's top Via: the branch matches the CANCEL to its INVITE
    at the server (§9.2). Send it only once a provisional response came back (§9.1); it gets its
    own NonInviteClientTransaction.
    """
    _check_invite(invite, "a CANCEL")
    return _same_transaction_request(invite, Method.CANCEL, to=_required(invite, "To"))


def _same_transaction_request(invite: Request, method: Method, *, to: str) -> Request:
    headers = Headers()
    top_via = invite.headers.get("Via")
    if top_via is None:
        raise LocalProtocolError(f"cannot build {method} for an INVITE without a Via")
    headers.add("Via", top_via)
    max_forwards = invite.max_forwards
    headers.add("Max-Forwards", str(DEFAULT_MAX_FORWARDS if max_forwards is None else max_forwards))
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("From", _required(invite, "From"))
    headers.add("To", to)
    headers.add("Call-ID", _required(invite, "Call-ID"))
    headers.add("CSeq", f"{invite.cseq.seq} {method}")
    return Request(method, invite.uri, headers)


def _check_invite(request: Request, what: str) -> None:
    if request.method != Method.INVITE:
        raise LocalProtocolError(f"cannot build {what} for a {request.method}: only an INVITE has one")


def _required(message: Request | Response, name: str) -> str:
    value = message.headers.get(name)
    if value is None:
        raise LocalProtocolError(f"the {_describe(message)} has no {name} header to copy")
    return value


def _describe(message: Request | Response) -> str:
    if isinstance(message, Request):
        return f"{message.method} request"
    return f"{message.status} response"
