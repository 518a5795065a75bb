"""The fuzzer's messages: realistic seeds, and the mutations applied to them.

Seeds are what reaches a softswitch in practice: SIPp's built-in `uac` INVITE and its keep-alive
OPTIONS, softphone INVITEs (display names, compact headers, Allow/Supported, a proxy's extra Via
and Record-Route), REGISTER with and without credentials, and in-dialog BYEs for dialogs the node
does not know (481). A mutated message gets one to three mutations: structural ones on a `Draft`
(header duplication, CRLF or CTL injection in a value, Content-Length rewrites, non-UTF-8 in
Call-ID/tags/URIs/display names, odd Request-URI schemes, unknown Require option tags, over-long
lines, many headers or Vias, malformed start lines, From/To and Via values) and byte-level ones on
the serialised bytes (bit flips, inserts, deletes, truncation). Some messages are split across
several writes; some desynchronise the stream (truncated, Content-Length too long) and then close
their connection from our side.

Everything here is pure and deterministic: `build(seed, index, ...)` draws from a generator seeded
by (seed, index) alone, so message `index` of a run is the same bytes in every run and can be sent
alone again (`fuzz.py --only INDEX`). Every message carries its token `fz<seed>x<index>` in Call-ID,
branch and tags, which is how a log record is traced back to the message that caused it.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

CRLF = b"\r\n"

SDP = (
    b"v=0\r\n"
    b"o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 6004 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
)

SOFTPHONE_SDP = (
    b"v=0\r\n"
    b"o=- 3912683731 3912683731 IN IP4 192.168.1.23\r\n"
    b"s=baresip\r\n"
    b"c=IN IP4 192.168.1.23\r\n"
    b"t=0 0\r\n"
    b"m=audio 11430 RTP/AVP 9 0 8 101\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

# Dialled numbers: the node routes all of them to its gateway, whose behaviour depends on the prefix
# (fuzz.py's gateway: 1555000048… busy, 4420… answers then hangs up, anything else answers).
NUMBERS = (b"service", b"15551234567", b"+14155550100", b"442079460123", b"15550000486", b"14155550199")


@dataclass(slots=True)
class Draft:
    """A SIP message being built: start line, header fields in order, body, Content-Length policy.

    `content_length` None writes the body's true length; a list writes each value given as its own
    Content-Length line (empty: none at all); `compact_length` spells it `l:`.
    """

    method: bytes
    uri: bytes
    headers: list[list[bytes]]  # [name, value] pairs, in order; mutable on purpose
    body: bytes = b""
    version: bytes = b"SIP/2.0"
    content_length: list[bytes] | None = None
    compact_length: bool = False
    start_line: bytes | None = None  # replaces "METHOD URI VERSION" when set
    tail: bytes = b""  # appended after the body (e.g. an unterminated line)

    def serialise(self) -> bytes:
        start = self.start_line if self.start_line is not None else b" ".join((self.method, self.uri, self.version))
        lines = [start, *(name + b": " + value for name, value in self.headers)]
        lengths = [str(len(self.body)).encode()] if self.content_length is None else self.content_length
        lines += [(b"l: " if self.compact_length else b"Content-Length: ") + value for value in lengths]
        return CRLF.join(lines) + CRLF + CRLF + self.body + self.tail

    def find(self, name: bytes) -> list[int]:
        """Indexes of the header fields called `name` (case-insensitive)."""
        lowered = name.lower()
        return [i for i, (n, _) in enumerate(self.headers) if n.lower() == lowered]


@dataclass(frozen=True, slots=True)
class FuzzMessage:
    """Message `index` of a run: its bytes, how they are written, and what was done to its seed."""

    index: int
    seed_kind: str
    mutations: tuple[str, ...]
    data: bytes
    splits: tuple[int, ...] = ()  # offsets where the bytes are cut into separate writes
    slot: int = 0  # which of the fuzzer's connections carries it
    close_after: bool = False  # the stream is desynchronised: we close the connection after it
    token: str = ""

    def chunks(self) -> list[bytes]:
        """The writes this message is sent as."""
        edges = [0, *self.splits, len(self.data)]
        return [self.data[a:b] for a, b in itertools.pairwise(edges) if b > a]


# --- seeds -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ctx:
    rng: random.Random
    token: str
    index: int
    port: int  # the node's SIP port, for Request-URIs

    def hexid(self, n: int = 16) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))


def _sipp_invite(c: _Ctx) -> Draft:
    number = c.rng.choice(NUMBERS)
    local = 5061 + c.index % 1000
    return Draft(b"INVITE", b"sip:%s@127.0.0.1:%d" % (number, c.port), [
        [b"Via", f"SIP/2.0/TCP 127.0.0.1:{local};branch=z9hG4bK-{c.token}-1-0".encode()],
        [b"From", f"sipp <sip:sipp@127.0.0.1:{local}>;tag={c.token}SIPpTag001".encode()],
        [b"To", b"%s <sip:%s@127.0.0.1:%d>" % (number, number, c.port)],
        [b"Call-ID", f"{c.index}-{c.token}@127.0.0.1".encode()],
        [b"CSeq", b"1 INVITE"],
        [b"Contact", f"sip:sipp@127.0.0.1:{local}".encode()],
        [b"Max-Forwards", b"70"],
        [b"Subject", b"Performance Test"],
        [b"Content-Type", b"application/sdp"],
    ], SDP, content_length=[b"  %d" % len(SDP)])  # SIPp pads its Content-Length


def _softphone_invite(c: _Ctx) -> Draft:
    number = c.rng.choice(NUMBERS)
    user = c.rng.choice([b"alice", b"1001", b"+14155550142", b"zo\xc3\xab"])
    display = c.rng.choice([b'"Alice Liddell"', b'"Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m"', b"Bob", b'""', b""])
    compact = c.rng.random() < 0.3

    def name(long: bytes, short: bytes) -> bytes:
        return short if compact else long

    headers = [
        [name(b"Via", b"v"), f"SIP/2.0/TCP 192.168.1.23:52344;branch=z9hG4bK{c.token}{c.hexid(8)};rport;alias".encode()],
        [name(b"From", b"f"), display + b" <sip:" + user + f"@pbx.example.com>;tag={c.token}-{c.hexid(10)}".encode()],
        [name(b"To", b"t"), b"<sip:%s@pbx.example.com>" % number],
        [name(b"Call-ID", b"i"), f"{c.token}-{c.hexid(24)}".encode()],
        [b"CSeq", f"{c.rng.randint(1, 60000)} INVITE".encode()],
        [name(b"Contact", b"m"), b"<sip:" + user + b"@192.168.1.23:52344;transport=tcp>;+sip.instance=\"<urn:uuid:"
         + c.hexid(8).encode() + b"-0b1a-4c2d-9e3f-" + c.hexid(12).encode() + b">\""],
        [b"Max-Forwards", b"70"],
        [b"Allow", b"INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER"],
        [name(b"Supported", b"k"), b"replaces,norefersub"],
        [b"User-Agent", b"baresip v3.10.1 (x86_64/linux)"],
        [name(b"Content-Type", b"c"), b"application/sdp"],
    ]
    if c.rng.random() < 0.3:  # came through an outbound proxy
        headers.insert(0, [b"Via", f"SIP/2.0/TCP 203.0.113.7:5060;branch=z9hG4bK{c.token}p;received=203.0.113.7"
                           .encode()])
        headers.insert(1, [b"Record-Route", b"<sip:203.0.113.7:5060;transport=tcp;lr>"])
    if c.rng.random() < 0.2:
        headers.append([b"P-Asserted-Identity", b"<tel:+14155550142>"])
    return Draft(b"INVITE", b"sip:%s@127.0.0.1:%d;transport=tcp" % (number, c.port), headers, SOFTPHONE_SDP)


def _options(c: _Ctx) -> Draft:
    sipp = c.rng.random() < 0.5
    return Draft(b"OPTIONS", b"sip:%s@127.0.0.1:%d" % (b"service" if sipp else b"ping", c.port), [
        [b"Via", f"SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK{c.token}o;rport".encode()],
        [b"Max-Forwards", b"70"],
        [b"From", f"<sip:keepalive@127.0.0.1>;tag={c.token}".encode()],
        [b"To", b"<sip:ping@127.0.0.1:%d>" % c.port],
        [b"Call-ID", f"{c.token}-opt@127.0.0.1".encode()],
        [b"CSeq", f"{c.rng.randint(1, 9999)} OPTIONS".encode()],
        [b"Accept", b"application/sdp"],
        [b"User-Agent", b"SIPp/3.7.3" if sipp else b"Linphone/5.2.0 (belle-sip/5.2.0)"],
    ])


def _bye(c: _Ctx) -> Draft:
    return Draft(b"BYE", b"sip:service@127.0.0.1:%d;transport=tcp" % c.port, [
        [b"Via", f"SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK-{c.token}-2-7".encode()],
        [b"From", f"sipp <sip:sipp@127.0.0.1:5061>;tag={c.token}SIPpTag001".encode()],
        [b"To", f"service <sip:service@127.0.0.1:{c.port}>;tag={c.hexid(10)}".encode()],
        [b"Call-ID", f"{c.index}-{c.token}@127.0.0.1".encode()],
        [b"CSeq", b"2 BYE"],
        [b"Contact", b"sip:sipp@127.0.0.1:5061"],
        [b"Max-Forwards", b"70"],
        [b"Subject", b"Performance Test"],
    ])


def _register(c: _Ctx) -> Draft:
    user = c.rng.choice([b"1001", b"alice", b"+14155550142"])
    headers = [
        [b"Via", f"SIP/2.0/TCP 192.168.1.23:52344;branch=z9hG4bK{c.token}r;rport".encode()],
        [b"Max-Forwards", b"70"],
        [b"From", b"<sip:" + user + f"@pbx.example.com>;tag={c.token}".encode()],
        [b"To", b"<sip:" + user + b"@pbx.example.com>"],
        [b"Call-ID", f"{c.token}-reg-{c.hexid(12)}".encode()],
        [b"CSeq", f"{c.rng.randint(1, 50)} REGISTER".encode()],
        [b"Contact", b"<sip:" + user + b"@192.168.1.23:52344;transport=tcp>;expires=3600;reg-id=1"],
        [b"Expires", b"3600"],
        [b"Allow", b"INVITE,ACK,BYE,CANCEL,OPTIONS"],
        [b"User-Agent", b"Zoiper rv2.10.20.3"],
    ]
    if c.rng.random() < 0.4:
        headers.append([b"Authorization", b'Digest username="' + user + b'",realm="pbx.example.com",nonce="'
                        + c.hexid(32).encode() + b'",uri="sip:pbx.example.com",response="' + c.hexid(32).encode()
                        + b'",algorithm=MD5,qop=auth,nc=00000001,cnonce="' + c.hexid(8).encode() + b'"'])
    return Draft(b"REGISTER", b"sip:pbx.example.com;transport=tcp", headers)


SEEDS: dict[str, Callable[[_Ctx], Draft]] = {
    "invite-sipp": _sipp_invite,
    "invite-softphone": _softphone_invite,
    "options": _options,
    "bye": _bye,
    "register": _register,
}
_SEED_WEIGHTS = {"invite-sipp": 4, "invite-softphone": 4, "options": 2, "bye": 2, "register": 2}


# --- structural mutations (on a Draft) ---------------------------------------------------------------

NON_UTF8 = (b"\xff", b"\xfe\xff", b"\x80", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80",
            b"\xe2\x82", b"M\xfcller", b"\xa0")
CTLS = (b"\r", b"\n", b"\x00", b"\x01", b"\x07", b"\x08", b"\x0b", b"\x0c", b"\x1b", b"\x1f", b"\x7f")
SCHEMES = (b"http://127.0.0.1/x", b"https://example.com/call", b"urn:service:sos", b"mailto:bob@example.com",
           b"tel:+14155550199", b"tel:+1-415-555-0199", b"tel:4155550199;phone-context=+1", b"tel:", b"tel:+",
           b"tel:abc!", b"tel:+1415;;;", b"sips:15551234567@127.0.0.1", b"im:alice@example.com",
           b"pres:x@example.com", b"SIP:15551234567@127.0.0.1", b"sip:", b"sip:@", b"sip:15551234567@",
           b"sip:15551234567@[::1", b"sip:15551234567@127.0.0.1:99999", b"*", b"<sip:x@y>",
           b"sip:15551234567@127.0.0.1;transport=", b"sip:user:secret@127.0.0.1", b"data:,hello")
OPTION_TAGS = (b"foo", b"x-fuzz", b"100rel", b"timer", b"replaces", b"precondition", b"sec-agree",
               b"foo, bar", b"", b"100rel, x-unknown", b"\xff")
BAD_NAME_ADDRS = (b"<not a uri>;tag=x1", b'"unterminated <sip:a@b>;tag=1', b"<sip:@>;tag=1", b"sip:a@b;tag=",
                  b"<sip:a@b;tag=1", b"", b";tag=1", b"<http://example.com>;tag=1", b"<sip:a@b>;tag=a;tag=b",
                  b"<sip:a@b>;tag", b"<<sip:a@b>>;tag=1", b"<sip:a@b>;tag=\"quoted\"", b"<sip:a b@c>;tag=1")
BAD_VIAS = (b"SIP/2.0/TCP", b"SIP/2.0/XYZ 127.0.0.1", b"SIP/2.0/TCP 127.0.0.1;branch",
            b"SIP/2.0/TCP 127.0.0.1:0;branch=z9hG4bK1", b"SIP/2.0/TCP [::1;branch=z9hG4bK1",
            b"SIP/2.0/TCP 127.0.0.1;rport=abc", b"SIP/2.0/TCP 127.0.0.1;received=not-an-ip", b"SIP/2.0/TCP :5060",
            b"SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK1,", b"SIP/3.0/TCP 127.0.0.1")
START_LINES = (b"invite sip:15551234567@127.0.0.1 SIP/2.0", b"INVIT sip:15551234567@127.0.0.1 SIP/2.0",
               b"FOO sip:15551234567@127.0.0.1 SIP/2.0", b"INVITE sip:15551234567@127.0.0.1 SIP/2.1",
               b"INVITE sip:15551234567@127.0.0.1 SIP/3.0", b"INVITE sip:15551234567@127.0.0.1 HTTP/1.1",
               b"INVITE sip:15551234567@127.0.0.1", b"INVITE  sip:15551234567@127.0.0.1  SIP/2.0",
               b"INVITE\tsip:15551234567@127.0.0.1\tSIP/2.0", b"INVITE SIP/2.0", b" INVITE sip:1@127.0.0.1 SIP/2.0",
               b"", b"SIP/2.0 200 OK", b"SIP/2.0 999 Strange", b"SIP/2.0 abc OK", b"GET / HTTP/1.1")
MANDATORY = (b"Via", b"From", b"To", b"Call-ID", b"CSeq", b"Max-Forwards", b"Contact", b"v", b"f", b"t", b"i", b"m")


def _pick_header(d: Draft, rng: random.Random, prefer: tuple[bytes, ...] = ()) -> int | None:
    preferred = [i for name in prefer for i in d.find(name)]
    if preferred and rng.random() < 0.7:
        return rng.choice(preferred)
    return rng.randrange(len(d.headers)) if d.headers else None


def _insert(value: bytes, extra: bytes, rng: random.Random) -> bytes:
    at = rng.randint(0, len(value))
    return value[:at] + extra + value[at:]


def m_dup_header(d: Draft, rng: random.Random) -> None:
    i = _pick_header(d, rng, (b"Call-ID", b"From", b"To", b"CSeq", b"Via", b"Max-Forwards", b"Contact", b"i", b"f"))
    if i is None:
        return
    name, value = d.headers[i]
    copy = value if rng.random() < 0.5 else value + b"-" + str(rng.randint(0, 99)).encode()
    d.headers.insert(rng.randint(0, len(d.headers)), [name, copy])


def m_crlf_inject(d: Draft, rng: random.Random) -> None:
    i = _pick_header(d, rng)
    if i is None:
        return
    extra = rng.choice([b"\r\nX-Injected: yes", b"\r\nVia: SIP/2.0/TCP evil.example.com;branch=z9hG4bKevil",
                        b"\r\n", b"\r\n\r\n", b"\r\nContent-Length: 0\r\n\r\nOPTIONS sip:x SIP/2.0", b"\r\n folded"])
    d.headers[i][1] = _insert(d.headers[i][1], extra, rng)


def m_ctl(d: Draft, rng: random.Random) -> None:
    ctl = rng.choice(CTLS)
    where = rng.random()
    if where < 0.15:
        d.uri = _insert(d.uri, ctl, rng)
        return
    i = _pick_header(d, rng, (b"Call-ID", b"From", b"To", b"Via", b"Contact", b"i", b"f", b"t"))
    if i is not None:
        d.headers[i][1] = _insert(d.headers[i][1], ctl, rng)


def m_content_length(d: Draft, rng: random.Random) -> str:
    n = len(d.body)
    kind = rng.choice(["too-long", "too-short", "negative", "huge", "duplicated", "non-numeric", "missing",
                       "padded", "compact"])
    values: dict[str, list[bytes]] = {
        "too-long": [str(n + rng.randint(1, 2000)).encode()],
        "too-short": [str(max(0, n - rng.randint(1, max(1, n)))).encode()],
        "negative": [b"-" + str(rng.randint(1, 500)).encode()],
        "huge": [rng.choice([b"99999999999999999999", b"4294967296", b"65536", b"2147483648", b"1" * 300])],
        "duplicated": [str(n).encode(), str(n if rng.random() < 0.5 else n + rng.randint(1, 50)).encode()],
        "non-numeric": [rng.choice([b"12a", b"0x10", b"1 2", b"+5", b"1e3", b"", b"\xff", b"NaN"])],
        "missing": [],
        "padded": [rng.choice([b"   %d" % n, b"000%d" % n, b"%d   " % n, b"\t%d" % n])],
        "compact": [str(n).encode()],
    }
    d.content_length = values[kind]
    d.compact_length = kind == "compact"
    return f"content-length-{kind}"


def m_non_utf8(d: Draft, rng: random.Random) -> str:
    bad = rng.choice(NON_UTF8)
    target = rng.choice(["call-id", "from-tag", "to-tag", "uri-user", "display-name", "from-user", "branch",
                         "contact", "user-agent"])
    match target:
        case "uri-user":
            d.uri = d.uri.replace(b"sip:", b"sip:" + bad, 1)
        case "call-id" | "branch" | "contact" | "user-agent":
            name = {"call-id": b"Call-ID", "branch": b"Via", "contact": b"Contact", "user-agent": b"User-Agent"}[target]
            found = d.find(name) or d.find({b"Call-ID": b"i", b"Via": b"v", b"Contact": b"m"}.get(name, name))
            if not found:
                d.headers.append([name, bad])
            else:
                i = found[0]
                d.headers[i][1] = _insert(d.headers[i][1], bad, rng) if target != "branch" else \
                    d.headers[i][1].replace(b"branch=", b"branch=" + bad, 1)
        case "from-tag" | "to-tag" | "display-name" | "from-user":
            name = b"To" if target == "to-tag" else b"From"
            found = d.find(name) or d.find(name[:1].lower())
            if found:
                i = found[0]
                value = d.headers[i][1]
                if target == "display-name":
                    value = b'"' + bad + b' Caller" ' + value
                elif target == "from-user":
                    value = value.replace(b"sip:", b"sip:" + bad, 1)
                elif b";tag=" in value:
                    value = value.replace(b";tag=", b";tag=" + bad, 1)
                else:
                    value += b";tag=" + bad
                d.headers[i][1] = value
    return f"non-utf8-{target}"


def m_scheme(d: Draft, rng: random.Random) -> None:
    uri = rng.choice(SCHEMES)
    d.uri = uri
    if rng.random() < 0.3:
        for i in d.find(b"To") + d.find(b"t"):
            d.headers[i][1] = b"<" + uri + b">"


def m_require(d: Draft, rng: random.Random) -> None:
    name = rng.choice([b"Require", b"Proxy-Require", b"Require"])
    d.headers.insert(rng.randint(0, len(d.headers)), [name, rng.choice(OPTION_TAGS)])
    if rng.random() < 0.2:
        d.headers.append([b"Supported", rng.choice(OPTION_TAGS)])


def m_long_line(d: Draft, rng: random.Random) -> str:
    size = rng.choice([1_000, 8_200, 20_000, 70_000, 200_000])
    filler = bytes(rng.choice(b"abcdefghij0123456789") for _ in range(64)) * (size // 64 + 1)
    kind = rng.choice(["header", "uri", "call-id", "unterminated"])
    if kind == "header":
        d.headers.append([b"X-Long", filler[:size]])
    elif kind == "uri":
        d.uri = d.uri.replace(b"sip:", b"sip:" + filler[:size], 1)
    elif kind == "call-id":
        for i in d.find(b"Call-ID") + d.find(b"i"):
            d.headers[i][1] += filler[:size]
    else:  # a line that never ends: the node can only answer 400 and close
        d.start_line = b"INVITE sip:" + filler[:size]
        d.headers, d.body, d.content_length = [], b"", []
    return f"long-line-{kind}-{size}"


def m_many_headers(d: Draft, rng: random.Random) -> str:
    count = rng.choice([60, 101, 250, 600])
    at = rng.randint(0, len(d.headers))
    d.headers[at:at] = [[f"X-Fuzz-{n}".encode(), b"v" * rng.randint(0, 20)] for n in range(count)]
    return f"many-headers-{count}"


def m_many_vias(d: Draft, rng: random.Random) -> str:
    count = rng.choice([20, 71, 150, 400])
    vias = [f"SIP/2.0/TCP 10.0.{n // 250}.{n % 250}:5060;branch=z9hG4bK{n}x".encode() for n in range(count)]
    if rng.random() < 0.5:
        d.headers[0:0] = [[b"Via", v] for v in vias]
    else:
        d.headers.insert(0, [b"Via", b", ".join(vias)])
    return f"many-vias-{count}"


def m_start_line(d: Draft, rng: random.Random) -> None:
    d.start_line = rng.choice(START_LINES)


def m_name_addr(d: Draft, rng: random.Random) -> None:
    name = rng.choice([b"From", b"From", b"To", b"Contact"])
    found = d.find(name)
    value = rng.choice(BAD_NAME_ADDRS)
    if found:
        d.headers[found[0]][1] = value
    else:
        d.headers.append([name, value])


def m_drop_header(d: Draft, rng: random.Random) -> None:
    present = [i for i, (n, _) in enumerate(d.headers) if n in MANDATORY]
    if present:
        del d.headers[rng.choice(present)]


def m_max_forwards(d: Draft, rng: random.Random) -> None:
    value = rng.choice([b"0", b"1", b"-1", b"256", b"99999999999", b"abc", b"", b"70 70"])
    found = d.find(b"Max-Forwards")
    if found:
        d.headers[found[0]][1] = value
    else:
        d.headers.append([b"Max-Forwards", value])


def m_cseq(d: Draft, rng: random.Random) -> None:
    value = rng.choice([b"1 BYE", b"4294967296 INVITE", b"-1 INVITE", b"abc INVITE", b"1", b"1 INVITE extra",
                        b"1  INVITE", b"", b"1 invite", b"99999999999999999999 INVITE", b"1 \xffINVITE"])
    found = d.find(b"CSeq")
    if found:
        d.headers[found[0]][1] = value


def m_header_name(d: Draft, rng: random.Random) -> None:
    i = _pick_header(d, rng)
    if i is None:
        return
    name = d.headers[i][0]
    d.headers[i][0] = rng.choice([name + b" ", name.replace(b"-", b" "), b"", name + b":" + name,
                                  b"Fr\xf6m", name.upper(), name.swapcase(), b"X-" + name + b"\x00"])


def m_fold(d: Draft, rng: random.Random) -> None:
    i = _pick_header(d, rng, (b"Subject", b"From", b"To", b"Via", b"Allow"))
    if i is not None:
        value = d.headers[i][1]
        at = rng.randint(0, len(value))
        d.headers[i][1] = value[:at] + rng.choice([b"\r\n ", b"\r\n\t", b"\r\n  \t "]) + value[at:]


def m_via(d: Draft, rng: random.Random) -> None:
    found = d.find(b"Via") + d.find(b"v")
    value = rng.choice(BAD_VIAS)
    if found:
        d.headers[found[0]][1] = value
    else:
        d.headers.insert(0, [b"Via", value])


def m_body(d: Draft, rng: random.Random) -> None:
    kind = rng.randrange(4)
    if kind == 0:
        d.body = bytes(rng.randrange(256) for _ in range(rng.randint(1, 600)))
    elif kind == 1:
        d.body = b"v=0\r\n" * rng.randint(1, 12000)  # up to ~60 KB: near the message size limit
    elif kind == 2:
        d.body = d.body.replace(b"\r\n", b"\n")
    else:
        for i in d.find(b"Content-Type") + d.find(b"c"):
            d.headers[i][1] = rng.choice([b"", b"application/sdp;charset=\xff", b"multipart/mixed", b"x" * 300])


Structural = Callable[[Draft, random.Random], "str | None"]

STRUCTURAL: dict[str, tuple[int, Structural]] = {
    "dup-header": (6, m_dup_header),
    "crlf-inject": (6, m_crlf_inject),
    "ctl": (8, m_ctl),
    "content-length": (8, m_content_length),
    "non-utf8": (10, m_non_utf8),
    "scheme": (6, m_scheme),
    "require": (4, m_require),
    "long-line": (2, m_long_line),
    "many-headers": (2, m_many_headers),
    "many-vias": (2, m_many_vias),
    "start-line": (3, m_start_line),
    "name-addr": (5, m_name_addr),
    "drop-header": (4, m_drop_header),
    "max-forwards": (3, m_max_forwards),
    "cseq": (3, m_cseq),
    "header-name": (3, m_header_name),
    "fold": (2, m_fold),
    "via": (3, m_via),
    "body": (2, m_body),
}


# --- byte-level mutations (on the serialised bytes) ----------------------------------------------------


def b_bit_flip(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8) if data else 0):
        at = rng.randrange(len(data))
        data[at] ^= 1 << rng.randrange(8)


def b_insert(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(data))
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))


def b_delete(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        if len(data) > 2:
            at = rng.randrange(len(data) - 1)
            del data[at:at + rng.randint(1, 16)]


def b_truncate(data: bytearray, rng: random.Random) -> None:
    if len(data) > 2:
        del data[rng.randint(1, len(data) - 1):]


BYTEWISE: dict[str, tuple[int, Callable[[bytearray, random.Random], None]]] = {
    "bit-flip": (6, b_bit_flip),
    "byte-insert": (4, b_insert),
    "byte-delete": (4, b_delete),
    "truncate": (3, b_truncate),
}

# After these the node cannot find the next message's start on the stream (or waits for bytes that
# never come): half the time we close the connection ourselves, half the time we go on and see.
DESYNC = ("truncate", "content-length-too-long", "content-length-huge", "long-line-unterminated",
          "content-length-non-numeric", "content-length-negative", "content-length-missing", "crlf-inject")

CLEAN_SHARE = 0.15  # unmutated messages keep real calls going through the node
SPLIT_SHARE = 0.10


def _weighted(rng: random.Random, table: Mapping[str, tuple[int, object]]) -> str:
    names = list(table)
    return rng.choices(names, weights=[table[n][0] for n in names])[0]


def build(seed: int, index: int, *, port: int, connections: int) -> FuzzMessage:
    """Message `index` of the run with `seed`, addressed to the node's SIP `port`; see the module docstring."""
    rng = random.Random(f"switchd-fuzz:{seed}:{index}")
    token = f"fz{seed}x{index}"
    seed_kind = rng.choices(list(_SEED_WEIGHTS), weights=list(_SEED_WEIGHTS.values()))[0]
    draft = SEEDS[seed_kind](_Ctx(rng, token, index, port))
    applied: list[str] = []
    bytewise: list[str] = []
    if rng.random() >= CLEAN_SHARE:
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            if rng.random() < 0.75:
                name = _weighted(rng, STRUCTURAL)
                label = STRUCTURAL[name][1](draft, rng)
                applied.append(label or name)
            else:
                bytewise.append(_weighted(rng, BYTEWISE))
    data = bytearray(draft.serialise())
    for name in bytewise:
        BYTEWISE[name][1](data, rng)
    applied += bytewise
    splits: tuple[int, ...] = ()
    if rng.random() < SPLIT_SHARE and len(data) > 8:
        splits = tuple(sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 5)))))
        applied.append(f"split-{len(splits) + 1}")
    desync = any(label.startswith(DESYNC) for label in applied)
    return FuzzMessage(index=index, seed_kind=seed_kind, mutations=tuple(applied), data=bytes(data), splits=splits,
                       slot=rng.randrange(connections), close_after=desync and rng.random() < 0.5, token=token)


@dataclass
class MutationCounts:
    """How often each mutation was applied in a run (for the summary)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, message: FuzzMessage) -> None:
        for label in message.mutations or ("clean",):
            key = re.sub(r"-\d+$", "", label)  # "many-vias-150" and "many-vias-20" count together
            self.counts[key] = self.counts.get(key, 0) + 1
