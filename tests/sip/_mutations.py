"""Hypothesis strategies: valid SIP messages mangled the ways a fuzzer (or a bad peer) mangles them.

Bit flips, inserted bytes (control characters, bytes that are not UTF-8, SIP delimiters), a
header line duplicated, CRLF injected inside a line, Content-Length rewritten, truncation.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.sip.messages import ACK, BYE, INVITE, OK_200, OPTIONS

VALID = [INVITE, OPTIONS, BYE, ACK, OK_200]
# Bytes the edge cares about: controls, CR and LF, bytes that are not UTF-8 alone, delimiters.
DANGEROUS = [b"\r", b"\n", b"\r\n", b"\x00", b"\x01", b"\x1b", b"\x7f", b"\x80", b"\xc3", b"\xff", b"\xed\xa0\x80",
             b";", b"\"", b"<", b">", b"@", b" ", b"\t", b",", b"%", b"\\", b"=", b":"]


def _flip(data: bytes, position: int, bit: int) -> bytes:
    if not data:
        return data
    position %= len(data)
    return data[:position] + bytes([data[position] ^ (1 << bit)]) + data[position + 1:]


def _insert(data: bytes, position: int, chunk: bytes) -> bytes:
    position %= len(data) + 1
    return data[:position] + chunk + data[position:]


def _duplicate_line(data: bytes, index: int) -> bytes:
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if len(lines) < 2:
        return data
    line = lines[1 + index % (len(lines) - 1)]
    return b"\r\n".join([*lines, line]) + sep + body


def _content_length(data: bytes, value: bytes) -> bytes:
    start = data.find(b"Content-Length: ")
    if start < 0:
        return data
    end = data.find(b"\r\n", start)
    return data[:start + 16] + value + data[end:]


def _truncate(data: bytes, length: int) -> bytes:
    return data[:length % (len(data) + 1)]


_edit = st.one_of(
    st.builds(lambda p, b: lambda d: _flip(d, p, b), st.integers(0, 2000), st.integers(0, 7)),
    st.builds(lambda p, c: lambda d: _insert(d, p, c), st.integers(0, 2000),
              st.sampled_from(DANGEROUS) | st.binary(min_size=1, max_size=3)),
    st.builds(lambda i: lambda d: _duplicate_line(d, i), st.integers(0, 20)),
    st.builds(lambda v: lambda d: _content_length(d, v), st.sampled_from([b"0", b"1", b"99999", b"-1", b"x"])),
    st.builds(lambda n: lambda d: _truncate(d, n), st.integers(0, 2000)),
)


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """One valid message with one to four edits, or arbitrary bytes now and then."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    data = draw(st.sampled_from(VALID))
    for edit in draw(st.lists(_edit, min_size=1, max_size=4)):
        data = edit(data)
    return data
