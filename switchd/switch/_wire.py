"""The messages between SIP transport processes and call sessions, and the names they go by.

A connection process owns one TCP stream; a UDP socket process owns one UDP socket and talks to
every peer that sends to it. Either turns what it reads into SIP messages (``switchd.sip``) and
hands each to the process that owns it as an `Inbound`, whose `conn` is the *reply path* to the
peer it came from:

* TCP: the connection process's `Pid` — the stream is the peer;
* UDP: a `UdpPeer`, the socket process plus the peer's address (and our address on that socket).

Whoever answers or sends to that peer hands the message and the reply path to `deliver`, which
puts an `Outbound` (with the peer's address, for UDP) in the transport process's mailbox; the
process to monitor for the peer's transport going away is `transport_pid(path)`. Nothing else
needs to know which transport a peer is on. Requests towards a gateway go to that gateway's
link process as `ToGateway`; when the gateway cannot be reached, or its connection drops while a
session has a transaction on it, the session gets a `GatewayFailed`.

Who owns a message (RFC 3261 §12 dialogs, §17 transactions; on UDP a retransmitted request is
absorbed by the socket's server transactions before anyone sees it, see `_udp_socket`):

* A new INVITE (no To tag, Call-ID unknown) starts a CallSession under the ``calls``
  DynamicSupervisor; the session registers `a_leg_name(call_id)` before it is reported started.
* Everything else whose Call-ID is an A-leg Call-ID (ACK, BYE, CANCEL, a retransmitted INVITE,
  in-dialog requests from the caller: re-INVITE, UPDATE, INFO ...) goes to the process registered
  as `a_leg_name(call_id)`.
* Responses, and requests from the callee (its BYE, re-INVITE, INFO ...), carry the B-leg Call-ID
  the session chose;
  the session `join`s the duplicate-key group `b_leg_key(call_id)` for each B-leg attempt, and the
  connection `dispatch`es to it.
* Anything else: OPTIONS → 200; a request for no known dialog → 481 (an ACK is dropped); an
  unsupported method → 501 (405 when it is a known method we do not allow). A request without a
  To tag is never in a dialog: only a new INVITE starts anything.

A session answers every request that reaches it: it relays an in-dialog request to the other leg
(`_call_relay`), or refuses it (481, 491, 500, 501). The request's answer goes back on the
connection it came in on.

One message comes from outside the wire: `Hangup`, sent to `a_leg_name(call_id)` to end a call
(the HTTP API's DELETE /calls/{call_id}, through `switchd.switch.hangup_call`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from switchd.billing import HangupParty
from switchd.otp import Pid, send
from switchd.sip import Request, Response

__all__ = [
    "GatewayFailed", "Hangup", "Inbound", "Outbound", "ReplyPath", "ToGateway", "UdpPeer", "a_leg_name",
    "b_leg_key", "deliver", "gateway_name", "transport_pid", "udp_socket_name",
]


@dataclass(frozen=True, slots=True)
class UdpPeer:
    """The reply path to a peer over UDP: the socket process that heard it, and its address.

    `address` is the (host, port) its datagram came from, where everything for it goes (RFC 3581
    symmetric signalling: never an address its headers name); `local` is our ``host:port`` on
    that socket, for the Contact and Via of what we send it.
    """

    socket: Pid
    address: tuple[str, int]
    local: str


ReplyPath: TypeAlias = Pid | UdpPeer
"""How to reach a peer: a TCP connection process, or a UDP socket process and the peer's address."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """Transport → owner: `message` arrived from the peer at the end of `conn` at `received_at`."""

    message: Request | Response
    conn: ReplyPath
    received_at: float  # trio.current_time() when the last byte of the message was read


@dataclass(frozen=True, slots=True)
class Outbound:
    """Owner → transport process: write `message` to the peer (at `to`, on a UDP socket).

    A connection process ignores `to`: its stream is the peer. A UDP socket sends a request to
    `to` and a response to `to` or, without one, where its top Via says (`switchd.sip.response_destination`).
    """

    message: Request | Response
    to: tuple[str, int] | None = None


def deliver(path: ReplyPath, message: Request | Response) -> None:
    """Send `message` to the peer at the end of `path`; never blocks, a transport that is gone drops it."""
    if isinstance(path, UdpPeer):
        send(path.socket, Outbound(message, path.address))
    else:
        send(path, Outbound(message))


def transport_pid(path: ReplyPath) -> Pid:
    """The process that carries `path`: monitor it to learn that the peer's transport is gone."""
    return path.socket if isinstance(path, UdpPeer) else path


@dataclass(frozen=True, slots=True)
class ToGateway:
    """Session → gateway connection process: send `message` to the gateway.

    `reply_to` is told with a `GatewayFailed` if the message cannot be written (connection refused,
    reset) or if the connection drops before `reply_to` has stopped using the gateway.
    """

    message: Request
    reply_to: Pid


@dataclass(frozen=True, slots=True)
class GatewayFailed:
    """Gateway connection process → session: the gateway `gateway` is unreachable or dropped."""

    gateway: str
    call_id: str  # the B-leg Call-ID of the message that failed, or of the session's attempt
    reason: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """Anyone → a session: end this call now, as ended by `by` for `cause`.

    Before the answer the B-leg is cancelled and the caller gets 487 (CDR CANCELLED); after it,
    both legs get a BYE (CDR ANSWERED, or FAILED if the caller never ACKed). An ending call
    ignores it.
    """

    by: HangupParty = HangupParty.OPERATOR
    cause: str = "operator"


def a_leg_name(call_id: str) -> str:
    """The registered name of the session that owns the caller's dialog `call_id`."""
    return f"call:a:{call_id}"


def a_leg_call_id(name: str) -> str | None:
    """The Call-ID in a name `a_leg_name` made, or None when `name` is not one."""
    prefix = a_leg_name("")
    return name[len(prefix):] if name.startswith(prefix) else None


def b_leg_key(call_id: str) -> str:
    """The duplicate-key registry group a session joins for each B-leg Call-ID it places."""
    return f"call:b:{call_id}"


def gateway_name(gateway: str) -> str:
    """The registered name of the connection process for `gateway`."""
    return f"gateway:{gateway}"


def udp_socket_name(address: str) -> str:
    """The registered name of the UDP socket process bound to `address` (``host:port``)."""
    return f"udp:{address}"
