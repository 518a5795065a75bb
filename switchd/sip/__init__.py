"""switchd.sip: a sans-IO SIP 2.0 layer (RFC 3261 over TCP), in the manner of h11.

Bytes in, events out; messages in, bytes out. No I/O, no clock, nothing else of switchd.
See docs/sip.md.
"""

from ._address import NameAddr, parse_name_addr
from ._auth import Challenge, Credentials, parse_challenge, parse_credentials
from ._codes import Method, Status, codes
from ._connection import NEED_DATA, Connection, ConnectionClosed, Event, NeedData, Ping
from ._cseq import CSeq, parse_cseq
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError, SipError
from ._headers import Headers, canonical_name
from ._message import Request, Response
from ._parser import parse_message
from ._retry_after import RetryAfter, parse_retry_after
from ._serializer import serialize
from ._uri import SipUri, parse_uri
from ._via import Via, parse_via

__all__ = [  # sorted; tests/test_exports.py checks it against the public names
    "CSeq", "Challenge", "Connection", "ConnectionClosed", "Credentials", "Event", "Headers",
    "LocalProtocolError", "Method", "NEED_DATA", "NameAddr", "NeedData", "Ping", "ProtocolError",
    "RemoteProtocolError", "Request", "Response", "RetryAfter", "SipError", "SipUri", "Status", "Via",
    "canonical_name", "codes", "parse_challenge", "parse_credentials", "parse_cseq", "parse_message",
    "parse_name_addr", "parse_retry_after", "parse_uri", "parse_via", "serialize",
]
