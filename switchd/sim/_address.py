"""``host:port`` addresses as the command line and the tests write them."""

from __future__ import annotations

from switchd.sip import SipError, parse_uri

from ._errors import AddressError

HostPort = tuple[str, int]


def parse_address(text: str, *, default_port: int | None = None) -> HostPort:
    """`text` (``127.0.0.1:5060``, ``[::1]:5060``, or a bare host with `default_port`) as (host, port).

    Raises AddressError naming the text when it has no valid port.
    """
    host, colon, port = text.strip().rpartition(":")
    if not colon or (host.count(":") and not host.startswith("[")):
        if default_port is None:
            raise AddressError(f"address {text!r} is not host:port")
        host, port = text.strip(), str(default_port)
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise AddressError(f"address {text!r} has no host")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AddressError(f"address {text!r}: port {port!r} is not a number in 0-65535")
    return host, int(port)


def format_address(address: HostPort) -> str:
    """(host, port) as ``host:port`` (``[host]:port`` for IPv6)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_user(text: str, what: str = "user") -> str:
    """`text` if it can be the user part of a SIP URI (a number, or a name); else AddressError.

    The error names `what` (``caller``, ``callee``) and the rule broken, never the builder that
    found it.
    """
    try:
        parse_uri(f"sip:{text}@127.0.0.1")
    except SipError as exc:
        raise AddressError(f"{what} {text!r} is not a SIP user part: {str(exc).rpartition(': ')[2]}") from None
    return text

