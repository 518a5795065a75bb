"""SIP over UDP (RFC 3261 §18): one datagram is one message; where a response goes; the size rule.

* `parse_datagram(data)` is the datagram parser entry point: the same head parser and the same
  edge checks (`validate`) as the stream `Connection`, framed by the datagram instead of by
  Content-Length (§18.3): Content-Length is optional, a body shorter than it declares is an error
  (a request gets the 400; a response is dropped), bytes after it are discarded. A datagram of
  CR and LF only is a keep-alive (what phones send through NATs) and parses to None. Every error
  costs its datagram only: ``framing_lost`` means nothing here.
* `stamp_source(request, host, port)` is the server side of §18.2.1 and RFC 3581: the top Via of a
  request read from the datagram of `host`:`port` gets ``received=host`` and ``rport=port``,
  replacing whatever the peer wrote there, for every request (as if each had asked for rport, as
  Kamailio's force_rport does). So `response_destination` of any response built from it
  (`make_response` copies the Vias) is exactly that source: a response never goes to an address
  the Via names but the datagram did not come from (§18.2.2's maddr and sent-by routing are not
  used), which is what stops a forged Via from aiming our answers at a third party.
* `UDP_REQUEST_LIMIT`: §18.1.1's size rule. A request larger than this (1300 bytes, for a path
  MTU that is not known) is sent over a congestion-controlled transport (TCP) instead; what the
  sender does when the peer cannot take TCP is its choice (switchd: docs/sip.md).
"""

from __future__ import annotations

from dataclasses import replace

from ._errors import RemoteProtocolError
from ._grammar import split_comma
from ._message import Request, Response
from ._parser import DEFAULT_LIMITS, Limits, parse_head, validate
from ._via import Via

__all__ = ["UDP_REQUEST_LIMIT", "parse_datagram", "response_destination", "stamp_source"]

UDP_REQUEST_LIMIT = 1300
"""RFC 3261 §18.1.1: bytes above which a request goes over TCP when the path MTU is not known."""

_STAMPED = frozenset({"received", "rport"})


def parse_datagram(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Request | Response | None:
    """The message in the UDP datagram `data`, or None for a keep-alive (CR and LF only).

    Raises RemoteProtocolError for anything that is not one valid message; its `partial` is set
    (so a request can be answered) whenever the start line could be read. A datagram larger than
    `limits.max_message_size` is refused unread (status_hint 513, no partial).
    """
    if not data.strip(b"\r\n"):
        return None
    if len(data) > limits.max_message_size:
        raise RemoteProtocolError(
            f"a datagram of {len(data)} bytes, over max_message_size={limits.max_message_size}",
            status_hint=513, limit="max_message_size",
        )
    start = 0
    while data.startswith(b"\r\n", start):  # RFC 3261 §7.5: CRLFs before the start line are ignored
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        head = data[start:].rstrip(b"\r\n")
        parsed = parse_head(head, limits)  # for the partial (a garbage start line raises here)
        if parsed.error is not None:
            raise parsed.error  # what is wrong inside the head says more (a line too long ...)
        raise RemoteProtocolError("the datagram has no blank line ending the headers",
                                  reason="Bad Request", partial=parsed.message)
    parsed = parse_head(data[start:end], limits)
    message = parsed.message
    rest = data[end + 4:]
    if parsed.content_length_error is not None:
        raise RemoteProtocolError(parsed.content_length_error, reason="Bad Content-Length", partial=message)
    length = parsed.content_length
    if length is None:
        message.body = rest  # §18.3: optional on a datagram; the body is the rest of it
    elif length > len(rest):
        message.body = rest
        raise RemoteProtocolError(
            f"Content-Length {length} but the datagram ends after {len(rest)} bytes of body",
            reason="Bad Content-Length", partial=message,
        )
    else:
        message.body = rest[:length]  # §18.3: bytes after the body are discarded
    if parsed.error is not None:
        raise parsed.error
    validate(message, limits)
    return message


def stamp_source(request: Request, host: str, port: int) -> None:
    """Set ``received=host;rport=port`` on the top Via of `request`, read from `host`:`port`.

    Any ``received`` or ``rport`` the peer wrote is replaced. `host` is an IP address as the
    socket reports it (an IPv6 one without brackets, as RFC 3261's grammar writes it). The
    message must have passed `validate` (its top Via is parsed).
    """
    vias = request.vias
    top = vias[0]
    params = tuple(p for p in top.params if p[0].lower() not in _STAMPED)
    stamped = replace(top, params=(*params, ("received", host), ("rport", str(port))))
    _replace_top_via(request, stamped)


def _replace_top_via(request: Request, via: Via) -> None:
    """Write `via` in place of the topmost Via value; the other cached accessors stay valid."""
    headers = request.headers
    fields = headers._fields
    for index, (key, name, value, _) in enumerate(fields):
        if key == "via":
            values = split_comma(value) if "," in value else [value]  # a comma list: the rest stays
            values[0] = str(via)
            fields[index] = (key, name, ", ".join(values), None)
            break
    cached: list[Via] | None = headers._cache.get("via")
    if cached is not None:
        headers._cache["via"] = [via, *cached[1:]]


def response_destination(response: Response) -> tuple[str, int]:
    """Where a UDP response goes: its top Via's ``received`` (else its host) and ``rport`` (else its port).

    RFC 3261 §18.2.2 with RFC 3581 §4, minus maddr; the port defaults to 5060. For a response to
    a request that went through `stamp_source` this is the request's source address. An IPv6
    host loses its brackets (the form a socket takes).
    """
    via = response.top_via
    host = via.received or via.host
    if host.startswith("["):
        host = host[1:-1]
    port = via.rport or via.port or 5060
    return host, port
