"""The fuzzer's side of the wire: framing what the node sends, and the few clean messages we write.

The node's output is read with a deliberately small framer (blank line, then Content-Length or
`l:`; none means 0), not with switchd.sip: the fuzzer must not share the parser it attacks. What
a real caller does is done cleanly: a 200 to an INVITE gets its ACK and then a BYE (so answered
calls end and are billed), a request from the node (its BYE) gets a 200, and each checkpoint sends
one OPTIONS on a fresh connection.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

_COMPACT = {b"f": b"from", b"t": b"to", b"i": b"call-id", b"v": b"via", b"m": b"contact", b"l": b"content-length"}
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Frame:
    """One message from the node: its start line, header fields (lower-case long names), body."""

    start: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = b""

    @property
    def status(self) -> int | None:
        """The status code of a response; None for a request."""
        if not self.start.startswith(b"SIP/2.0 "):
            return None
        code = self.start[8:11]
        return int(code) if code.isdigit() else None

    @property
    def method(self) -> bytes:
        """The request's method (b"" for a response)."""
        return b"" if self.status is not None else self.start.partition(b" ")[0]

    def all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]

    def get(self, name: bytes) -> bytes | None:
        found = self.all(name)
        return found[0] if found else None

    @property
    def cseq(self) -> tuple[int, bytes] | None:
        number, _, method = (self.get(b"cseq") or b"").strip().partition(b" ")
        return (int(number), method.strip()) if number.isdigit() else None


@dataclass
class FrameReader:
    """Splits the node's byte stream into `Frame`s; `malformed` counts frames with an unreadable length."""

    _buf: bytearray = field(default_factory=bytearray)
    malformed: int = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while True:
            while self._buf[:2] == b"\r\n":  # keep-alive CRLFs between messages
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return frames
            lines = bytes(self._buf[:end]).split(b"\r\n")
            headers: list[tuple[bytes, bytes]] = []
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                key = name.strip().lower()
                headers.append((_COMPACT.get(key, key), value.strip()))
            length = 0
            for key, value in headers:
                if key == b"content-length":
                    if value.isdigit():
                        length = int(value)
                    else:
                        self.malformed += 1
            if len(self._buf) < end + 4 + length:
                return frames
            body = bytes(self._buf[end + 4:end + 4 + length])
            del self._buf[:end + 4 + length]
            frames.append(Frame(lines[0], tuple(headers), body))


def _contact_uri(frame: Frame, fallback: bytes) -> bytes:
    contact = frame.get(b"contact") or b""
    if b"<" in contact and b">" in contact:
        return contact.partition(b"<")[2].partition(b">")[0]
    return fallback


def ack_and_bye(ok: Frame, *, local_port: int, node_port: int, transport: bytes = b"TCP") -> tuple[bytes, bytes] | None:
    """The ACK for a 200 to an INVITE and the BYE that ends its call; None if the 200 lacks a dialog header."""
    from_, to, call_id, cseq = ok.get(b"from"), ok.get(b"to"), ok.get(b"call-id"), ok.cseq
    if from_ is None or to is None or call_id is None or cseq is None:
        return None
    uri = _contact_uri(ok, b"sip:service@127.0.0.1:%d" % node_port)

    def request(method: bytes, number: int) -> bytes:
        return b"".join([
            method, b" ", uri, b" SIP/2.0\r\n",
            b"Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK-fuzz-followup-%d\r\n" % (transport, local_port, next(_ids)),
            b"From: ", from_, b"\r\nTo: ", to, b"\r\nCall-ID: ", call_id, b"\r\n",
            b"CSeq: %d %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n" % (number, method),
        ])

    return request(b"ACK", cseq[0]), request(b"BYE", cseq[0] + 1)


def ok_to(request: Frame) -> bytes | None:
    """A 200 OK to a request the node sent us (its BYE); None if the request lacks what a response copies."""
    vias, from_, to, call_id = request.all(b"via"), request.get(b"from"), request.get(b"to"), request.get(b"call-id")
    cseq = request.get(b"cseq")
    if not vias or from_ is None or to is None or call_id is None or cseq is None:
        return None
    lines = [b"SIP/2.0 200 OK", *(b"Via: " + via for via in vias), b"From: " + from_, b"To: " + to,
             b"Call-ID: " + call_id, b"CSeq: " + cseq, b"Content-Length: 0"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def options_probe(node_port: int, local_port: int, transport: bytes = b"TCP") -> tuple[bytes, bytes]:
    """A clean OPTIONS (and its Call-ID), as a monitoring system sends to see that a node is up."""
    n = next(_ids)
    call_id = b"fuzz-probe-%d@127.0.0.1" % n
    data = (b"OPTIONS sip:ping@127.0.0.1:%d SIP/2.0\r\n" % node_port
            + b"Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK-fuzz-probe-%d\r\n" % (transport, local_port, n)
            + b"Max-Forwards: 70\r\n"
            + b"From: <sip:monitor@127.0.0.1>;tag=probe%d\r\n" % n
            + b"To: <sip:ping@127.0.0.1:%d>\r\n" % node_port
            + b"Call-ID: " + call_id + b"\r\n"
            + b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    return data, call_id
