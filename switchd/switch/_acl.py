"""IP access control by direction: who may send requests in, and where registered phones may be.

In, by the source address of a request (the TCP peer):

* ``deny``: every request but an ACK is answered 403 Forbidden (and counted as ``acl``);
* ``trusted``: carriers and gateways — their new calls are taken without a digest challenge;
* anybody else: an INVITE must authenticate (407) when authentication is on; a REGISTER always
  must (401), trusted or not: a registration names an account.

Out, by the address of a Contact a phone registers (``contact_allow``, ``contact_deny``): the
registrar refuses a Contact outside the allowed networks or inside a denied one with 403, and a
call is never sent to one (the lists may have changed since it was registered). With either list
set, a Contact must be an IP address: a host name would have to be resolved to be checked, and
resolving is I/O the registrar does not do — and a name that resolves somewhere harmless today
can resolve elsewhere tomorrow. Without either, any Contact is taken.

Why outbound at all: a registered Contact is an address a stranger chose for the switch to
connect to. Without a check, an account could make the switch open connections into networks
it should not reach (its own management network, a cloud metadata address).

Pure: networks are parsed once (`ipaddress`), a check is a scan of a few networks. An address
that does not parse (a Unix socket's name in a test) matches no network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["Acl", "Trust", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Trust(Enum):
    """How the inbound lists classify a source."""

    DENIED = "denied"
    TRUSTED = "trusted"
    UNKNOWN = "unknown"  # neither: authenticate


def parse_networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """`texts` as networks (``192.0.2.0/24``, ``2001:db8::/32``, a single address); ValueError if one is not."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.removeprefix("[").removesuffix("]").partition("%")[0])
    except ValueError:
        return None
    # An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d: check it as the IPv4 address it is.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def _within(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Acl:
    """The node's access lists (see the module docstring); empty lists: nobody denied or trusted, any Contact.

    ``trusted``, ``deny``: inbound networks. ``contact_allow``, ``contact_deny``: outbound networks.
    """

    trusted: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()
    contact_allow: tuple[Network, ...] = field(default=())
    contact_deny: tuple[Network, ...] = field(default=())

    @classmethod
    def from_lists(cls, *, trusted: Iterable[str] = (), deny: Iterable[str] = (), contact_allow: Iterable[str] = (),
                   contact_deny: Iterable[str] = ()) -> Acl:
        """The Acl of networks written as text (the configuration's); ValueError for one that is not a network."""
        return cls(trusted=parse_networks(trusted), deny=parse_networks(deny),
                   contact_allow=parse_networks(contact_allow), contact_deny=parse_networks(contact_deny))

    def classify(self, source: str) -> Trust:
        """DENIED, TRUSTED or UNKNOWN for a request from the address `source`; deny wins over trust."""
        if not self.trusted and not self.deny:
            return Trust.UNKNOWN
        address = _address(source)
        if address is None:
            return Trust.UNKNOWN
        if _within(address, self.deny):
            return Trust.DENIED
        return Trust.TRUSTED if _within(address, self.trusted) else Trust.UNKNOWN

    @property
    def checks_contacts(self) -> bool:
        """True when a Contact's address is checked (and must then be an IP address)."""
        return bool(self.contact_allow or self.contact_deny)

    def contact_refusal(self, host: str) -> str | None:
        """Why a Contact at `host` (an IP address or a name) may not be registered or called; None if it may."""
        if not self.checks_contacts:
            return None
        address = _address(host)
        if address is None:
            return f"Contact host {host!r} is not an IP address (the outbound ACL checks addresses)"
        if _within(address, self.contact_deny):
            return f"Contact address {host} is in a denied network"
        if self.contact_allow and not _within(address, self.contact_allow):
            return f"Contact address {host} is outside the allowed networks"
        return None
