"""Benchmark of switchd.sip: parse an INVITE and read what a proxy needs; serialise a 200 OK.

Same-run baseline: h11 parsing an HTTP request of about the same size and header count.
Run: /work/venv/bin/python bench/sip_bench.py   (takes a few seconds)
"""

from __future__ import annotations

import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import h11

from switchd.sip import Connection, Request, Response, parse_message, serialize

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


def parse_invite_and_read_proxy_headers() -> None:
    """What a proxy does with an INVITE: frame it, then read the transaction/dialog headers."""
    connection = Connection()
    connection.receive_data(INVITE)
    request = connection.next_event()
    assert isinstance(request, Request)
    # The addresses of Contact; a B2BUA that also reads contact[0].uri pays one URI parse more.
    read = (request.top_via.branch, request.from_.tag, request.to.tag, request.call_id, request.cseq,
            request.max_forwards, request.contact)
    assert read[0] == "z9hG4bK-3184-1-0"


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
    parse_invite_and_read_proxy_headers()
    parse_http_with_h11()
    sip, http, out = interleaved(
        [parse_invite_and_read_proxy_headers, parse_http_with_h11, serialise_200_ok], number=1000, rounds=25
    )
    print(f"INVITE: {len(INVITE)} bytes, 11 headers; HTTP request: {len(HTTP)} bytes, 11 headers")
    print(f"parse INVITE + read proxy headers : {sip * 1e6:7.2f} us")
    print(f"h11 parse of the HTTP request     : {http * 1e6:7.2f} us   (baseline)")
    print(f"ratio sip / h11                   : {sip / http:7.2f}     (target <= 0.50)")
    print(f"serialise a 200 OK ({len(serialize(OK))} bytes)   : {out * 1e6:7.2f} us   (target <= 10 us)")


if __name__ == "__main__":
    main()
