"""Benchmark of switchd.sip: parse an INVITE and read what a proxy needs; serialise a 200 OK.

Same-run baseline: h11 parsing an HTTP request of about the same size and header count.
Run: python bench/sip_bench.py   (takes a few seconds)
"""

from __future__ import annotations

import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import h11

from switchd.sip import Connection, Request, Response, Status, make_response, parse_message, serialize

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\n"
    b"s=Session SDP\r\n"
    b"c=IN IP4 192.0.2.101\r\n"
    b"t=0 0\r\n"
    b"m=audio 49172 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=sendrecv\r\n"
)

# 11 headers, like SIPp's uac scenario sends.
INVITE = (
    b"INVITE sip:+15551234567@switch.example.com:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.101:5060;branch=z9hG4bK-3184-1-0;rport\r\n"
    b"From: \"Alice\" <sip:alice@atlanta.example.com:5060>;tag=3184SIPpTag001\r\n"
    b"To: <sip:+15551234567@switch.example.com:5060>\r\n"
    b"Call-ID: 1-3184@192.0.2.101\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.101:5060;transport=tcp>\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject: Performance Test\r\n"
    b"User-Agent: SIPp/3.7.3\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

HTTP = (
    b"POST /calls/+15551234567 HTTP/1.1\r\n"
    b"Host: switch.example.com:5060\r\n"
    b"X-Via: SIP/2.0/TCP 192.0.2.101:5060;branch=z9hG4bK-3184-1-0;rport\r\n"
    b"X-From: \"Alice\" <sip:alice@atlanta.example.com:5060>;tag=3184SIPpTag001\r\n"
    b"X-To: <sip:+15551234567@switch.example.com:5060>\r\n"
    b"X-Call-ID: 1-3184@192.0.2.101\r\n"
    b"X-CSeq: 1 INVITE\r\n"
    b"X-Contact: <sip:alice@192.0.2.101:5060;transport=tcp>\r\n"
    b"Max-Forwards: 70\r\n"
    b"User-Agent: SIPp/3.7.3\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def read_proxy_headers(request: Request) -> None:
    """The headers a proxy needs: Via branch, From/To tags, Call-ID, CSeq, Max-Forwards, Contact."""
    read = (request.top_via.branch, request.from_.tag, request.to.tag, request.call_id, request.cseq,
            request.max_forwards, request.contact)
    assert read[0] == "z9hG4bK-3184-1-0"


def parse_invite_and_read_proxy_headers() -> None:
    """What the switch does with an INVITE: frame it off the stream, then read those headers."""
    connection = Connection()
    connection.receive_data(INVITE)
    request = connection.next_event()
    assert isinstance(request, Request)
    read_proxy_headers(request)


def parse_message_and_read_proxy_headers() -> None:
    """The same without stream framing: one complete message in hand."""
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    read_proxy_headers(request)


def parse_and_read_contact_uri() -> None:
    """As parse_invite_and_read_proxy_headers, plus the Contact URI (a B2BUA's remote target)."""
    connection = Connection()
    connection.receive_data(INVITE)
    request = connection.next_event()
    assert isinstance(request, Request)
    read_proxy_headers(request)
    assert request.contact[0].uri.port == 5060


def parse_http_with_h11() -> None:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(HTTP)
    request = connection.next_event()
    data = connection.next_event()
    assert isinstance(request, h11.Request) and isinstance(data, h11.Data)


OK = parse_message(
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.101:5060;branch=z9hG4bK-3184-1-0;received=192.0.2.101;rport=5060\r\n"
    b"From: \"Alice\" <sip:alice@atlanta.example.com:5060>;tag=3184SIPpTag001\r\n"
    b"To: <sip:+15551234567@switch.example.com:5060>;tag=sw-8f3a2c\r\n"
    b"Call-ID: 1-3184@192.0.2.101\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:switch@192.0.2.1:5060;transport=tcp>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def serialise_200_ok() -> None:
    assert isinstance(OK, Response)
    serialize(OK)


REQUEST = parse_message(INVITE)


def build_and_serialise_200_ok() -> None:
    """A UAS answering: make_response from the INVITE (RFC 3261 §8.2.6), then serialise it."""
    assert isinstance(REQUEST, Request)
    serialize(make_response(REQUEST, Status.OK, to_tag="sw-8f3a2c",
                            headers=[("Contact", "<sip:switch@192.0.2.1:5060;transport=tcp>"),
                                     ("Content-Type", "application/sdp")], body=SDP))


def interleaved(functions: list[Callable[[], None]], number: int, rounds: int) -> list[float]:
    """Best seconds per call of each function, measured in alternating batches.

    Time is this process's CPU time (the build machine's cores are shared, and wall-clock time
    would count other processes' turns), in alternating batches so both sides of a ratio see
    the same cache and frequency conditions; the minimum over the rounds is the least disturbed.
    """
    timers = [timeit.Timer(function, timer=time.process_time) for function in functions]
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for index, timer in enumerate(timers):
            best[index] = min(best[index], timer.timeit(number=number) / number)
    return best


def main() -> None:
    assert len(INVITE) - 80 <= len(HTTP) <= len(INVITE) + 80
    functions = [parse_invite_and_read_proxy_headers, parse_message_and_read_proxy_headers,
                 parse_and_read_contact_uri, parse_http_with_h11, serialise_200_ok, build_and_serialise_200_ok]
    for function in functions:
        function()
    framed, parsed, with_uri, http, out, built = interleaved(functions, number=1000, rounds=25)
    print(f"INVITE {len(INVITE)} bytes, 11 headers + SDP; HTTP request {len(HTTP)} bytes, 11 headers + same body")
    print("CPU time per operation, best of 25 alternating batches of 1000")
    print(f"h11: Connection, Request + Data events (baseline)  {http * 1e6:7.2f} us")
    print(f"sip: Connection + read proxy headers                {framed * 1e6:7.2f} us"
          f"   ratio {framed / http:.3f} (target <= 0.500)")
    print(f"sip: parse_message + read proxy headers             {parsed * 1e6:7.2f} us"
          f"   ratio {parsed / http:.3f}")
    print(f"sip: Connection + proxy headers + Contact URI       {with_uri * 1e6:7.2f} us"
          f"   ratio {with_uri / http:.3f}")
    print(f"sip: serialise a parsed 200 OK ({len(serialize(OK))} bytes)         {out * 1e6:7.2f} us"
          f"   (target <= 10 us)")
    print(f"sip: make_response + serialise a 200 OK with SDP    {built * 1e6:7.2f} us   (target <= 10 us)")


if __name__ == "__main__":
    main()
