"""Messages of a sample call (alice@10.0.0.1 calls bob via switchd) for the Part B tests.

Built from Request/Response/Headers directly, so the transaction and dialog tests do not depend on
the parser. Every field a test looks at is a keyword argument with the sample value as default.
"""

from __future__ import annotations

from collections.abc import Iterable

from switchd.sip import Headers, Method, Request, Response, parse_uri

CALL_ID = "a84b4c76e66710@10.0.0.1"
ALICE_CONTACT = "<sip:alice@10.0.0.1:5070;transport=tcp>"
BOB_CONTACT = "<sip:bob@192.0.2.4:5080;transport=tcp>"


def request(
    method: Method | str = Method.INVITE,
    *,
    uri: str = "sip:bob@switch.example.com",
    branch: str = "z9hG4bK776asdhds",
    sent_by: str = "10.0.0.1:5070",
    extra_vias: Iterable[str] = (),
    cseq: int = 314159,
    cseq_method: str | None = None,
    call_id: str = CALL_ID,
    from_tag: str | None = "1928301774",
    to_tag: str | None = None,
    contact: str | None = ALICE_CONTACT,
    record_routes: Iterable[str] = (),
    routes: Iterable[str] = (),
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Request:
    """A request from alice (by default the INVITE that starts the call)."""
    headers = Headers()
    headers.add("Via", f"SIP/2.0/TCP {sent_by};branch={branch}")
    for via in extra_vias:
        headers.add("Via", via)
    headers.add("Max-Forwards", "70")
    for route in routes:
        headers.add("Route", route)
    for record_route in record_routes:
        headers.add("Record-Route", record_route)
    headers.add("From", "Alice <sip:alice@example.com>" + (f";tag={from_tag}" if from_tag else ""))
    headers.add("To", "Bob <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""))
    headers.add("Call-ID", call_id)
    headers.add("CSeq", f"{cseq} {cseq_method or method}")
    if contact is not None:
        headers.add("Contact", contact)
    for name, value in extra:
        headers.add(name, value)
    return Request(method, parse_uri(uri), headers, body)


def response(
    to: Request,
    status: int,
    *,
    to_tag: str | None = "a6c85cf",
    contact: str | None = BOB_CONTACT,
    record_routes: Iterable[str] = (),
) -> Response:
    """Bob's `status` response to `to`, copying its Via, From, To, Call-ID and CSeq by hand."""
    headers = Headers()
    for via in to.headers.get_all("Via"):
        headers.add("Via", via)
    for record_route in record_routes:
        headers.add("Record-Route", record_route)
    headers.add("From", to.headers.get("From") or "")
    to_value = to.headers.get("To") or ""
    if to_tag is not None and to.to.tag is None:
        to_value += f";tag={to_tag}"
    headers.add("To", to_value)
    headers.add("Call-ID", to.call_id)
    headers.add("CSeq", to.headers.get("CSeq") or "")
    if contact is not None and status > 100:
        headers.add("Contact", contact)
    return Response(status, "Reason", headers)
