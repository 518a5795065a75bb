"""Parse SIP messages: the start line, header lines and validation of the mandatory headers.

Strategy (lazy, like a proxy wants it): the head is decoded once (strict UTF-8: RFC 3261 §7.3.1
makes header text UTF-8), split into lines once, and each header line into name and value once.
Nothing else is parsed here except what RFC 3261 §8.2 / §16.3 needs for every message: the
start line, Content-Length (framing), and Via, From, To, Call-ID, CSeq and Max-Forwards, which
`validate` parses in one pass straight into the cache the message's accessors read.

The edge: whatever `validate` passes is storable and serialisable everywhere. The head is valid
UTF-8 with no control character inside a line (CR and LF only as the CRLF that ends one; HTAB
allowed), Call-ID is ``word ["@" word]``, the From and To tags and the Via branches are tokens,
and the From and To URIs are parsed (a tel: one by RFC 3966). The text check costs one strict
decode and one ``bytes.translate``; only a head that fails them is searched for where.

Errors come in two kinds (see RemoteProtocolError): a garbage start line or a bad Content-Length
loses framing; anything else is found once the message is framed and costs only that message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ._codes import KNOWN_METHODS, method_of
from ._cseq import parse_cseq
from ._errors import RemoteProtocolError
from ._grammar import TOKEN, split_comma
from ._headers import ENTRIES, KNOWN, Field, Headers, canonical_name
from ._message import Request, Response, parse_call_id, parse_from, parse_max_forwards, parse_to
from ._uri import SipUri, parse_uri
from ._via import parse_via

__all__ = ["DEFAULT_LIMITS", "Limits", "Parsed", "parse_head", "parse_message", "split_head", "validate"]

_REQUEST_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+) (\S+) ([Ss][Ii][Pp]/[0-9]+\.[0-9]+)")
_STATUS_LINE = re.compile(r"([Ss][Ii][Pp]/[0-9]+\.[0-9]+) ([1-6][0-9][0-9]) ([^\r\n]*)")
# Something that is trying to be a SIP start line but is malformed: answerable with a 400.
_SIPISH = re.compile(r"\S+\s+.*[Ss][Ii][Pp]/[0-9]|[Ss][Ii][Pp]/[0-9]")
_new = object.__new__
_CONTENT_LENGTH = ENTRIES["Content-Length"]  # compared by identity in parse_head

# The single-valued headers validate() parses, by key; their parsed values are what the
# message's accessors cache under the same key.
_VALIDATED: dict[str, Callable[[str], object]] = {
    "call-id": parse_call_id, "cseq": parse_cseq, "from": parse_from, "to": parse_to,
    "max-forwards": parse_max_forwards,
}
_MANDATORY = ("from", "to", "call-id", "cseq")
_MANDATORY_KEYS = frozenset(_MANDATORY)
_NAMES = {"call-id": "Call-ID", "cseq": "CSeq", "from": "From", "to": "To", "max-forwards": "Max-Forwards"}
# Every control character but HTAB (RFC 3261 §25.1: none may appear in a header's text); CR and
# LF are among them, so a clean head loses exactly its line-ending CRLFs to the translate.
_CONTROLS = bytes(range(0x09)) + bytes(range(0x0A, 0x20)) + b"\x7f"
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Limits:
    """Parser limits; each breach is a RemoteProtocolError whose `.limit` names the field.

    These defaults are switchd's only ones: `Connection`, `switchd.switch.ConnectionSettings` and
    the `[sip]` configuration take theirs from `DEFAULT_LIMITS`.
    """

    max_message_size: int = 65_535  # bytes of head plus body
    max_headers: int = 100  # header fields in one message
    max_line_length: int = 8_192  # characters in one start or header line
    max_vias: int = 70  # Via values in one message (Max-Forwards' usual 70 hops)


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class Parsed:
    """A parsed head: the message shell, its declared body length and any deferred error."""

    message: Request | Response
    content_length: int | None
    content_length_error: str | None
    error: RemoteProtocolError | None


def _start_line(line: str) -> tuple[Request | Response, RemoteProtocolError | None]:
    """The message shell for `line`, and a framed error (bad URI, version) to raise later.

    Raises RemoteProtocolError(framing_lost=True) when `line` is not a SIP start line at all.
    """
    # The common case first: "METHOD sip:uri SIP/2.0" with known method and single spaces.
    method, _, rest = line.partition(" ")
    known = KNOWN_METHODS.get(method)
    if known is not None:
        uri_text, _, version = rest.partition(" ")
        if version == "SIP/2.0":
            try:
                uri = _request_uri(uri_text)
            except RemoteProtocolError as exc:
                request = Request(known, SipUri(), Headers._from_fields([]))
                exc.partial = request
                return request, exc
            # Request(known, uri, Headers._from_fields([])) without two __init__ calls (0.13 µs).
            headers = _new(Headers)
            headers._fields = []
            headers._cache = {}
            request = _new(Request)
            request.method = known
            request.uri = uri
            request.headers = headers
            request.body = b""
            return request, None
    if line[:4].upper() == "SIP/":
        m = _STATUS_LINE.fullmatch(line)
        if m is not None:
            version, status, reason = m.groups()
            response = Response(int(status), reason, Headers._from_fields([]))
            return response, _version_error(version, response)
        shell: Request | Response = Response(0, "", Headers._from_fields([]))
        if _SIPISH.match(line):
            return shell, RemoteProtocolError(
                f"malformed Status-Line {line[:200]!r}", reason="Bad Status-Line", partial=shell
            )
    else:
        m = _REQUEST_LINE.fullmatch(line)
        if m is not None:
            token, uri_text, version = m.groups()
            try:
                uri = _request_uri(uri_text)
                error = None
            except RemoteProtocolError as exc:
                uri, error = SipUri(), exc
            request = Request(method_of(token), uri, Headers._from_fields([]))
            if error is not None:
                error.partial = request
                return request, error
            return request, _version_error(version, request)
        if _SIPISH.match(line):
            first = line.split(None, 1)[0] if line.strip() else ""
            method = first if TOKEN.fullmatch(first) else "UNKNOWN"
            shell = Request(method_of(method), SipUri(), Headers._from_fields([]))
            return shell, RemoteProtocolError(
                f"malformed Request-Line {line[:200]!r}", reason="Bad Request-Line", partial=shell
            )
    raise RemoteProtocolError(
        f"garbage where a SIP start line was expected: {line[:200]!r}",
        reason="Bad Start-Line",
        framing_lost=True,
    )


def _request_uri(text: str) -> SipUri:
    uri = parse_uri(text, "Request-URI")
    if uri.headers:
        # RFC 3261 §19.1.1 (table 1): headers are not allowed in a Request-URI (RFC 4475 escruri).
        raise RemoteProtocolError(f"Request-URI {text!r} carries URI headers", reason="Bad Request-URI")
    return uri


def _version_error(version: str, message: Request | Response) -> RemoteProtocolError | None:
    if version.upper() == "SIP/2.0":
        return None
    return RemoteProtocolError(
        f"SIP version {version!r} is not supported (only SIP/2.0)", status_hint=505, partial=message
    )


def _long_line(lines: list[str], limits: Limits) -> RemoteProtocolError | None:
    for index, line in enumerate(lines):
        if len(line) > limits.max_line_length:
            return RemoteProtocolError(
                f"line {index + 1} of the head is {len(line)} characters, over max_line_length="
                f"{limits.max_line_length}",
                reason="Line Too Long",
                limit="max_line_length",
            )
    return None


def _start_line_name(raw: bytes | bytearray) -> str:
    return "Status-Line" if raw[:4].upper() == b"SIP/" else "Request-Line"


def _where(raw: bytes | bytearray, offset: int) -> str:
    """The header (or start line) of `raw` that byte `offset` is in, for an error message."""
    start = raw.rfind(b"\r\n", 0, offset) + 2
    while start > 1 and raw[start:start + 1] in (b" ", b"\t"):  # a folded line: its header's first line
        start = raw.rfind(b"\r\n", 0, start - 2) + 2
    if start < 2:
        return f"the {_start_line_name(raw)}"
    colon = raw.find(b":", start, offset)
    name = raw[start:offset if colon < 0 else colon].decode("ascii", "backslashreplace").strip(" \t")
    return f"the {canonical_name(name)} header" if TOKEN.fullmatch(name) else f"header name {name[:40]!r}"


def _bad_text(raw: bytes | bytearray, offset: int, what: str, reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"byte {offset} of the head (0x{raw[offset]:02x}, in {_where(raw, offset)}) {what}",
                               reason=reason)


def split_head(raw: bytes | bytearray) -> tuple[list[str], RemoteProtocolError | None]:
    """The lines of `raw` (a head without its blank line), and the error that makes it unacceptable.

    The lines are strict UTF-8 when they can be, else decoded with surrogateescape so the caller
    can still frame the message and answer it (error: 400 "Invalid UTF-8"). A control character
    inside a line — CR or LF outside a CRLF, NUL, any other but HTAB — is a 400 "Bad Header"
    ("Bad Request-Line" in the start line). Both errors name the header and the byte offset.
    """
    try:
        lines = raw.decode("utf-8").split("\r\n")
    except UnicodeDecodeError as exc:
        return (raw.decode("utf-8", "surrogateescape").split("\r\n"),
                _bad_text(raw, exc.start, "is not UTF-8 (RFC 3261 §7.3.1)", "Invalid UTF-8"))
    if len(raw) - len(raw.translate(None, _CONTROLS)) == 2 * (len(lines) - 1):
        return lines, None
    offset = 0
    for line in raw.split(b"\r\n"):
        m = _CONTROL.search(line)
        if m is not None:
            reason = "Bad Header" if offset else f"Bad {_start_line_name(raw)}"
            return lines, _bad_text(raw, offset + m.start(), "is a control character", reason)
        offset += len(line) + 2
    raise AssertionError("unreachable: the translate counted a control character")


def parse_head(raw: bytes | bytearray, limits: Limits = DEFAULT_LIMITS) -> Parsed:
    """Parse `raw` (start line and header lines, without the blank line that ends them).

    Raises RemoteProtocolError(framing_lost=True) only for a garbage start line; every other
    problem is returned in `Parsed.error` / `Parsed.content_length_error` for the caller to
    raise once it knows where the message ends. A head that is not clean text (`split_head`)
    is still split, so Content-Length frames it and the error has its partial message.
    """
    all_lines, text_error = split_head(raw)
    start, *lines = all_lines
    message, error = _start_line(start)
    if text_error is not None:
        error = text_error
    fields: list[Field] = message.headers._fields
    append = fields.append
    known_get = KNOWN.get
    lengths: list[str] = []  # Content-Length values, checked after the loop
    if len(raw) > limits.max_line_length:
        error = _long_line(all_lines, limits) or error
    for line in lines:
        name, colon, value = line.partition(":")
        known = known_get(name)
        if known is not None and colon:  # fast path: a known header spelt as usual
            value = value.strip()
            append((known[0], known[1], value, None))
            if known is _CONTENT_LENGTH:
                lengths.append(value)
            continue
        if line[:1] == " " or line[:1] == "\t":  # RFC 3261 §7.3.1: folded onto the previous line
            if not fields:
                error = error or RemoteProtocolError(
                    f"continuation line {line[:80]!r} before any header", reason="Bad Header"
                )
                continue
            key, name, value, raw_line = fields[-1]
            if key == "content-length":
                lengths[-1] = f"{value} {line.strip()}".strip()
            fields[-1] = (key, name, f"{value} {line.strip()}".strip(),
                          None if raw_line is None else f"{raw_line}\r\n{line}")
            continue
        if not colon:
            error = error or RemoteProtocolError(
                f"header line without ':' {line[:80]!r}", reason="Bad Header"
            )
            continue
        name = name.rstrip(" \t")
        known = known_get(name.lower())
        if known is not None:
            value = value.strip()
            append((known[0], known[1], value, None))
            if known is _CONTENT_LENGTH:
                lengths.append(value)
        elif TOKEN.fullmatch(name):
            append((name.lower(), name, value.strip(), line))
        else:
            error = error or RemoteProtocolError(f"bad header name {name[:80]!r}", reason="Bad Header")
    if len(fields) > limits.max_headers and error is None:
        error = RemoteProtocolError(
            f"{len(fields)} header fields, over max_headers={limits.max_headers}",
            reason="Too Many Headers",
            limit="max_headers",
        )
    content_length: int | None = None
    cl_error: str | None = None
    for value in lengths:
        if not value.isdigit() or not value.isascii() or len(value) > 10:
            cl_error = f"malformed Content-Length {value!r}"
            break
        length = int(value)
        if content_length is not None and length != content_length:
            cl_error = f"conflicting Content-Length values {content_length} and {value}"
            break
        content_length = length
    if error is not None:
        error.partial = message
    return Parsed(message, content_length, cl_error, error)


def validate(message: Request | Response, limits: Limits = DEFAULT_LIMITS) -> None:
    """Check the headers every transaction and dialog needs (RFC 3261 §8.1.1, §8.2.2).

    Via, From, To, Call-ID and CSeq must be present and well-formed, the single-valued ones
    (and Max-Forwards) at most once, and a request's CSeq method must be its method. One pass
    over the fields parses them into the cache the message's accessors read.

    Raises RemoteProtocolError(400, "Bad <header>" / "Missing <header>") with `.partial` set.
    """
    cache = message.headers._cache
    vias: list[str] = []
    validated = _VALIDATED.get
    try:
        for key, _, value, _ in message.headers._fields:
            parse = validated(key)
            if parse is None:
                if key == "via":
                    if "," in value:
                        vias.extend(split_comma(value))
                    else:
                        vias.append(value)
            elif key in cache:
                # RFC 4475 §3.3.9 (multi01): one value only, or nobody knows which counts.
                raise RemoteProtocolError(f"{_NAMES[key]} header appears more than once",
                                          reason=f"Multiple {_NAMES[key]}")
            else:
                cache[key] = parse(value)
        if not vias:
            raise RemoteProtocolError("missing Via header", reason="Missing Via")
        if len(vias) > limits.max_vias:
            raise RemoteProtocolError(
                f"{len(vias)} Via values, over max_vias={limits.max_vias}",
                reason="Too Many Via Headers",
                limit="max_vias",
            )
        cache["via"] = [parse_via(vias[0])] if len(vias) == 1 else [parse_via(v) for v in vias]
        if not cache.keys() >= _MANDATORY_KEYS:
            for key in _MANDATORY:  # the first missing in this order is the one reported
                if key not in cache:
                    name = _NAMES[key]
                    raise RemoteProtocolError(f"missing {name} header", reason=f"Missing {name}")
        if isinstance(message, Request):
            method = cache["cseq"].method
            if method is not message.method and method != message.method:
                # RFC 3261 §8.1.1.5: the CSeq method MUST match the request method.
                raise RemoteProtocolError(
                    f"CSeq method {method!s} does not match request method {message.method!s}",
                    reason="CSeq Method Mismatch",
                )
        if "max-forwards" not in cache:
            cache["max-forwards"] = None
    except RemoteProtocolError as exc:
        cache.clear()
        exc.partial = message
        raise


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Request | Response:
    """Parse one complete message (head, blank line, body) from `data`.

    Leading CRLFs are skipped. When Content-Length is present it must match the body's length;
    when absent the body is the rest of `data`. Raises RemoteProtocolError for anything else.
    """
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise RemoteProtocolError("no blank line ending the headers", reason="Bad Request",
                                  framing_lost=True)
    if len(data) - start > limits.max_message_size:
        raise RemoteProtocolError(
            f"message of {len(data) - start} bytes, over max_message_size={limits.max_message_size}",
            status_hint=513, limit="max_message_size", framing_lost=True,
        )
    parsed = parse_head(data[start:end], limits)
    message = parsed.message
    message.body = data[end + 4:]
    if parsed.content_length_error is not None:
        raise RemoteProtocolError(parsed.content_length_error, reason="Bad Content-Length",
                                  partial=message)
    if parsed.content_length is not None and parsed.content_length != len(message.body):
        raise RemoteProtocolError(
            f"Content-Length {parsed.content_length} but the body has {len(message.body)} bytes",
            reason="Bad Content-Length",
            partial=message,
        )
    if parsed.error is not None:
        raise parsed.error
    validate(message, limits)
    return message
