"""switchd.sip: a sans-IO SIP 2.0 layer (RFC 3261 over TCP and UDP), in the manner of h11; digest authentication too.

Bytes in, events out; messages in, bytes out. No I/O, no clock, nothing else of switchd.
See docs/sip.md.
"""

from ._address import NameAddr, parse_name_addr
from ._auth import Challenge, Credentials, parse_challenge, parse_credentials
from ._builders import make_ack_for_non2xx, make_cancel, make_request, make_response
from ._client_transaction import ClientTransaction, InviteClientTransaction, NonInviteClientTransaction
from ._codes import Method, Status, codes
from ._connection import NEED_DATA, Connection, ConnectionClosed, Event, NeedData, Ping
from ._cseq import CSeq, parse_cseq
from ._dialog import Dialog, DialogId, DialogRole, DialogState
from ._digest import (
    ALGORITHMS,
    DigestAlgorithm,
    DigestCredentials,
    authorization,
    challenge_value,
    digest_credentials,
    digest_response,
    ha1,
    verify_response,
)
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError, SipError
from ._grammar import is_token
from ._headers import Headers, canonical_name
from ._ids import MAGIC_COOKIE, new_branch, new_call_id, new_tag
from ._matching import ClientKey, ServerKey, TransactionTable, cancel_target_key, client_key, server_key
from ._message import Request, Response
from ._nonce import NonceCheck, Nonces
from ._parser import DEFAULT_LIMITS, Limits, parse_message
from ._retransmit import AckTimedOut, Uas2xxRetransmitter
from ._retry_after import RetryAfter, parse_retry_after
from ._serializer import serialize
from ._server_table import ServerTransactionTable
from ._server_transaction import InviteServerTransaction, NonInviteServerTransaction, ServerTransaction
from ._tel import dialled_number
from ._timers import TimerConfig
from ._transaction import (
    Terminated,
    TimedOut,
    TimerName,
    ToTransactionUser,
    Transaction,
    TransactionOutput,
    TransactionState,
    Transmit,
    TransportFailed,
)
from ._udp import UDP_REQUEST_LIMIT, parse_datagram, response_destination, stamp_source
from ._uri import SipUri, parse_uri
from ._via import Via, parse_via

__all__ = [  # sorted; tests/test_exports.py checks it against the public names
    "ALGORITHMS", "AckTimedOut", "CSeq", "Challenge", "ClientKey", "ClientTransaction", "Connection",
    "ConnectionClosed", "Credentials", "DEFAULT_LIMITS", "Dialog", "DialogId", "DialogRole", "DialogState",
    "DigestAlgorithm", "DigestCredentials", "Event", "Headers", "InviteClientTransaction",
    "InviteServerTransaction", "Limits", "LocalProtocolError", "MAGIC_COOKIE", "Method", "NEED_DATA",
    "NameAddr", "NeedData", "NonInviteClientTransaction", "NonInviteServerTransaction", "NonceCheck",
    "Nonces", "Ping", "ProtocolError", "RemoteProtocolError", "Request", "Response", "RetryAfter",
    "ServerKey", "ServerTransaction", "ServerTransactionTable", "SipError", "SipUri", "Status", "Terminated",
    "TimedOut", "TimerConfig", "TimerName", "ToTransactionUser", "Transaction", "TransactionOutput",
    "TransactionState", "TransactionTable", "Transmit", "TransportFailed", "UDP_REQUEST_LIMIT",
    "Uas2xxRetransmitter", "Via", "authorization", "cancel_target_key", "canonical_name", "challenge_value",
    "client_key", "codes", "dialled_number", "digest_credentials", "digest_response", "ha1", "is_token",
    "make_ack_for_non2xx", "make_cancel", "make_request", "make_response", "new_branch", "new_call_id",
    "new_tag", "parse_challenge", "parse_credentials", "parse_cseq", "parse_datagram", "parse_message",
    "parse_name_addr", "parse_retry_after", "parse_uri", "parse_via", "response_destination", "serialize",
    "server_key", "stamp_source", "verify_response",
]
