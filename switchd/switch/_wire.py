"""The messages between SIP connection processes and call sessions, and the names they go by.

A connection process owns one TCP stream. It turns bytes into SIP messages (``switchd.sip``) and
hands each to the process that owns it as an `Inbound`; a session puts a message on the wire by
sending the connection an `Outbound`. Requests towards a gateway go to that gateway's
connection process as `ToGateway`; when the gateway cannot be reached, or its connection drops
while a session has a transaction on it, the session gets a `GatewayFailed`.

Who owns a message (RFC 3261 §12 dialogs, §17 transactions; TCP, so no retransmissions):

* A new INVITE (no To tag, Call-ID unknown) starts a CallSession under the ``calls``
  DynamicSupervisor; the session registers `a_leg_name(call_id)` before it is reported started.
* Everything else whose Call-ID is an A-leg Call-ID (ACK, BYE, CANCEL, a retransmitted INVITE,
  in-dialog requests from the caller) goes to the process registered as `a_leg_name(call_id)`.
* Responses, and requests from the callee (its BYE), carry the B-leg Call-ID the session chose;
  the session `join`s the duplicate-key group `b_leg_key(call_id)` for each B-leg attempt, and the
  connection `dispatch`es to it.
* Anything else: OPTIONS → 200; a request for no known dialog → 481 (an ACK is dropped); an
  unsupported method → 501 (405 when it is a known method we do not allow).
"""

from __future__ import annotations

from dataclasses import dataclass

from switchd.otp import Pid
from switchd.sip import Request, Response

__all__ = [
    "GatewayFailed", "Inbound", "Outbound", "ToGateway", "a_leg_name", "b_leg_key", "gateway_name",
]


@dataclass(frozen=True, slots=True)
class Inbound:
    """Connection → owner: `message` arrived on the connection process `conn` at `received_at`."""

    message: Request | Response
    conn: Pid
    received_at: float  # trio.current_time() when the last byte of the message was read


@dataclass(frozen=True, slots=True)
class Outbound:
    """Owner → connection: serialise `message` onto this connection's stream."""

    message: Request | Response


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


def a_leg_name(call_id: str) -> str:
    """The registered name of the session that owns the caller's dialog `call_id`."""
    return f"call:a:{call_id}"


def b_leg_key(call_id: str) -> str:
    """The duplicate-key registry group a session joins for each B-leg Call-ID it places."""
    return f"call:b:{call_id}"


def gateway_name(gateway: str) -> str:
    """The registered name of the connection process for `gateway`."""
    return f"gateway:{gateway}"
