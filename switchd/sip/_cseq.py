"""CSeq header values (RFC 3261 §20.16): a sequence number and the request's method."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._codes import KNOWN_METHODS, Method, method_of
from ._grammar import bad, draft_class

__all__ = ["CSeq", "parse_cseq"]

_CSEQ = re.compile(r"\s*([0-9]{1,10})\s+([A-Za-z0-9\-.!%*_+`'~]+)\s*")


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE``: `seq` is below 2**31 (RFC 3261 §8.1.1.5)."""

    seq: int
    method: Method | str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CSeqDraft = draft_class(CSeq)


def parse_cseq(text: str) -> CSeq:
    """Parse a CSeq value; RemoteProtocolError(400, "Bad CSeq") when malformed or too large."""
    seq_text, _, method_text = text.partition(" ")
    method: Method | str | None = KNOWN_METHODS.get(method_text)
    if method is not None and seq_text.isdigit() and seq_text.isascii() and len(seq_text) <= 10:
        seq = int(seq_text)  # the common case: "1 INVITE"
    else:
        m = _CSEQ.fullmatch(text)
        if m is None:
            raise bad("CSeq", text)
        seq = int(m.group(1))
        method = method_of(m.group(2))
    if seq >= 2**31:
        raise bad("CSeq", text, "sequence number must be below 2**31")
    draft = _CSeqDraft()
    draft.seq = seq
    draft.method = method
    draft.__class__ = CSeq
    cseq: CSeq = draft
    return cseq
