"""The malformed-message corpus (tests/sip/malformed): its cases, and the answers a node must give.

Each case is one raw message in a file; `manifest.toml` says what switchd answers (see its
header). The corpus is run three ways: through `switchd.sip.Connection` (tests/sip), through a
connection process and the real Dispatcher (tests/switch) and over TCP against a live
``switchd run`` (tests/integration). The last two send `sent(case)` — the case, and a clean
OPTIONS after it when the connection should go on — on a connection of its own, and compare what
comes back with `expected(case)`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DIRECTORY = Path(__file__).parent / "malformed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One corpus message and what the node does with it."""

    file: str
    data: bytes
    kind: str  # encoding, control, scheme, option-tag, grammar, invite, framing
    answer: int | None  # the status of the answer; None: no answer
    closes: bool  # the node closes the connection (after the answer, if any)
    refused_by: str | None  # "parser", "switch", or None: served
    reason: str | None
    why: str
    udp_answer: int | None  # the status of the answer over UDP (the same, but for framing cases)

    @property
    def name(self) -> str:
        return self.file.removesuffix(".sip")


def load() -> list[Case]:
    """Every case of the manifest, in its order."""
    manifest = tomllib.loads((DIRECTORY / "manifest.toml").read_text(encoding="utf-8"))
    cases = []
    for entry in manifest["case"]:
        answer = entry["answer"]
        udp = entry.get("udp", answer)
        cases.append(Case(
            file=entry["file"], data=(DIRECTORY / entry["file"]).read_bytes(), kind=entry["class"],
            answer=answer if isinstance(answer, int) else None,
            closes=answer == "close" or entry.get("closes", False), refused_by=entry.get("refused_by"),
            reason=entry.get("reason"), why=entry["why"], udp_answer=udp if isinstance(udp, int) else None,
        ))
    return cases


CASES = load()


def after(case: Case) -> bytes:
    """The clean OPTIONS sent after `case` on the same connection; its 200 shows the connection went on."""
    return (
        "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5061;branch=z9hG4bK-after-{case.name}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:prober@127.0.0.1>;tag=after\r\n"
        "To: <sip:127.0.0.1:5060>\r\n"
        f"Call-ID: after-{case.name}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def sent(case: Case) -> bytes:
    """What goes on a case's connection: the case, then `after(case)` unless the case closes it
    (a line that must never end cannot be followed by one)."""
    return case.data if case.closes else case.data + after(case)


def expected(case: Case) -> list[str]:
    """The answers the node writes for `case` + `after(case)`, as ``"<status> <Call-ID>"``, then
    ``"closed"`` when it closes the connection."""
    answers = [] if case.answer is None else [f"{case.answer} {case_call_id(case)}"]
    return [*answers, "closed"] if case.closes else [*answers, f"200 after-{case.name}"]


def expected_udp(case: Case) -> list[str]:
    """The answers the node sends for `case` in one datagram, then `after(case)` in another: the
    status lines as `expected` writes them (a datagram never closes anything)."""
    answers = [] if case.udp_answer is None else [f"{case.udp_answer} {case_call_id(case)}"]
    return [*answers, f"200 after-{case.name}"]


def case_call_id(case: Case) -> str | None:
    """The Call-ID an answer to `case` carries: the case's own if it is clean text, else none."""
    for line in case.data.split(b"\r\n"):
        if line.lower().startswith(b"call-id:"):
            value = line[8:].strip()
            if value.isascii() and all(32 < byte < 127 for byte in value):
                return value.decode()
            return None
    return None


def answers(data: bytes, closed: bool) -> list[str]:
    """What the node wrote (`data`), read without a SIP parser — an answer to a bad message may
    lack the header that was bad — as ``"<status> <Call-ID>"`` per answer, then ``"closed"``."""
    out = []
    while b"\r\n\r\n" in data:
        head, _, data = data.partition(b"\r\n\r\n")
        start, *lines = head.decode("utf-8", "backslashreplace").split("\r\n")  # an old node echoed bad bytes
        fields = dict(line.split(": ", 1) for line in lines if ": " in line)
        data = data[int(fields.get("Content-Length", "0")):]
        out.append(f"{start.split(' ')[1]} {fields.get('Call-ID')}")
    return [*out, "closed"] if closed else out
