"""Via header values (RFC 3261 §20.42, §18.2.1, RFC 3581 rport).

``Via: SIP/2.0/TCP host[:port];branch=z9hG4bK...;received=...;rport[=port]`` — LWS around the
slashes and colons is allowed, as the grammar says; the branch is a token (the fast path's
parameters are token characters by construction, the general path checks it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from sys import intern

from ._grammar import (
    TOKEN_PARAMS,
    Params,
    bad,
    check_token_param,
    draft_class,
    find_param,
    format_params,
    get_param,
    parse_params,
    split_hostport,
    split_params,
)

__all__ = ["Via", "parse_via"]

_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
_VIA = re.compile(
    rf"\s*({_T})\s*/\s*({_T})\s*/\s*({_T})\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?)"
    r"(?:\s*:\s*([0-9]{1,5}))?\s*(;.*)?",
    re.DOTALL,
)
# The commonest shape in one regex: no LWS but the one space, parameters of token characters.
_COMMON = re.compile(rf"SIP/2\.0/(TCP|UDP) ([A-Za-z0-9][A-Za-z0-9.\-]*)(?::([0-9]{{1,5}}))?({TOKEN_PARAMS})")


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: sent-protocol, sent-by (`host`, `port`) and its parameters in order."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    def param(self, name: str) -> str | None:
        """The value of parameter `name` (case-insensitive); '' for a flag, None if absent."""
        return get_param(self.params, name)

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (transaction id, RFC 3261 §8.1.1.7), None when absent."""
        for key, value in self.params:  # find_param inlined: read on every message, first in line
            if key == "branch" or key.lower() == "branch":
                return value or None
        return None

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (RFC 3261 §18.2.1), None when absent."""
        return find_param(self.params, "received") or None

    @property
    def rport(self) -> int | None:
        """The ``rport`` value (RFC 3581) when it has one; None when absent or a bare flag."""
        value = find_param(self.params, "rport")
        return int(value) if value and value.isdigit() else None

    @property
    def wants_rport(self) -> bool:
        """True when ``rport`` is present, with or without a value."""
        return find_param(self.params, "rport") is not None

    @property
    def reliable(self) -> bool:
        """True when the transport it names retransmits for us: anything but UDP (TCP, TLS, SCTP, WS)."""
        return self.transport.upper() != "UDP"

    @property
    def sent_by(self) -> str:
        """``host[:port]`` as in the header (the §17.2.3 matching key with the branch)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


_ViaDraft = draft_class(Via)


def parse_via(text: str) -> Via:
    """Parse one Via value (already split from its comma list); RemoteProtocolError when malformed."""
    m = _COMMON.fullmatch(text)
    if m is None:
        return _parse_via(text)
    transport, host, port_text, params_text = m.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            return _parse_via(text)  # which says why
    params = split_params(params_text)
    if params is None:
        return _parse_via(text)
    draft = _ViaDraft()
    draft.transport = intern(transport)  # shared, as a URI's host (`common_uri`)
    draft.host = intern(host)
    draft.port = port
    draft.params = params
    draft.protocol = "SIP/2.0"
    draft.__class__ = Via
    via: Via = draft
    return via


def _parse_via(text: str) -> Via:
    """`parse_via` for any shape: LWS where the grammar allows it, quoted parameter values."""
    sent_protocol, _, rest = text.partition(" ")
    if sent_protocol == "SIP/2.0/TCP" or sent_protocol == "SIP/2.0/UDP":  # the common case
        protocol, transport = "SIP/2.0", sent_protocol[8:]
        rest = rest.lstrip(" \t")
    else:
        m = _VIA.fullmatch(text)
        if m is None:
            raise bad("Via", text)
        name, version, transport, host, port_text, params_text = m.groups()
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise bad("Via", text, f"port {port} out of range")
        params = check_token_param(parse_params(params_text, "Via", text), "branch", "Via", text) if params_text else ()
        protocol = "SIP/2.0" if name == "SIP" and version == "2.0" else f"{name}/{version}"
        return Via(transport.upper(), host, port, params, protocol)
    sent_by, semi, params_text = rest.partition(";")
    if " " in sent_by or "\t" in sent_by:
        sent_by = sent_by.replace(" ", "").replace("\t", "")  # LWS around ':' (RFC 3261 §20.42)
    host, port = split_hostport(sent_by, "Via", text)
    draft = _ViaDraft()
    draft.transport = transport
    draft.host = host
    draft.port = port
    draft.params = check_token_param(parse_params(semi + params_text, "Via", text), "branch", "Via", text) if semi else ()
    draft.protocol = protocol
    draft.__class__ = Via
    via: Via = draft
    return via
