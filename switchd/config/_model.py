"""The configuration model: frozen dataclasses, one per section, with their defaults and checks.

Each field's comment is its documentation; `config/switchd.toml` repeats it for the user. A
field's `check` (in its metadata) is applied by the loader when the key is given.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchd.billing import BillingStoreConfig, CdrQueue, NumberingPlan, RateDeck
from switchd.otp import ChildSpec, LoopLag
from switchd.sip import DEFAULT_LIMITS, DigestAlgorithm, Nonces, TimerConfig
from switchd.switch import (
    AccountLookup,
    Acl,
    Admission,
    Authenticator,
    CallSettings,
    ConnectionSettings,
    ConnectionTable,
    Gateway,
    RegisterLimits,
    RegistrarSettings,
    RouteTable,
    Tally,
    TrunkSettings,
    UdpSettings,
)


class ConfigError(Exception):
    """A configuration file was refused: `path`, dotted `key`, `line` (1-based) and `reason`."""

    def __init__(self, path: str, key: str, line: int | None, reason: str) -> None:
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")
        self.path = path
        self.key = key
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP address written `host:port` (`[::1]:5060` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# --- value checks: each returns what is wrong, or None ------------------------------------------

Check = Callable[[Any], "str | None"]


def at_least(minimum: float) -> Check:
    """Values below `minimum` are refused."""
    return lambda v: None if v >= minimum else f"must be >= {minimum:g}, not {v!r}"


def positive(v: float) -> str | None:
    """Zero and negative values are refused."""
    return None if v > 0 else f"must be > 0, not {v!r}"


def matches(pattern: str, what: str) -> Check:
    """Strings that `pattern` does not fully match are refused as not being `what`."""
    compiled = re.compile(pattern)
    return lambda v: None if compiled.fullmatch(v) else f"{v!r} is not {what}"


def opt(default: Any, check: Check | None = None, *, secret: bool = False) -> Any:
    """A dataclass field with a default and a check the loader applies when it is given.

    A `secret` is left out of repr, so a logged or printed configuration never shows it.
    """
    return field(default=default, metadata={"check": check} if check else {}, repr=not secret)


def each(check: Check) -> Check:
    """Lists whose every element `check` accepts; the first refusal is reported with its index."""
    def check_all(values: tuple[Any, ...]) -> str | None:
        for i, value in enumerate(values):
            problem = check(value)
            if problem is not None:
                return f"[{i}]: {problem}"
        return None

    return check_all


def cidr(value: str) -> str | None:
    """An IPv4 or IPv6 network (``192.0.2.0/24``, ``2001:db8::/32``) or address; host bits may be set."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"{value!r} is not an IP network (e.g. 192.0.2.0/24) or address"
    return None


def digest_algorithms(values: tuple[str, ...]) -> str | None:
    """A non-empty list of digest algorithm names switchd speaks, each once, in the order to offer them."""
    known = ("SHA-256", "MD5")
    if not values:
        return f"must name at least one of {', '.join(known)}"
    for value in values:
        if value not in known:
            return f"{value!r} is not a digest algorithm switchd speaks ({', '.join(known)})"
    if len(set(values)) != len(values):
        return "names an algorithm twice"
    return None


NAME = matches(r"[A-Za-z0-9][A-Za-z0-9_.@-]*", "a name (letters, digits, _ . @ -)")
HOST = matches(r"[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]", "a host name or IP address")
REALM = matches(r"[\x21-\x7e]{1,128}", "a realm (1-128 printable ASCII characters, no space)")
DIGITS = r"[0-9+*#]*"
USER = r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+"  # RFC 3261 §25.1 user (unreserved, escaped, user-unreserved)


# --- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SipConfig:
    """`[sip]`: the SIP listeners (TCP, UDP) and the limits that protect them from bad peers."""

    listen: Address = Address("127.0.0.1", 5060)
    listen_udp: tuple[Address, ...] = ()  # UDP addresses, one socket each ("h:p" or a list); (): no UDP
    udp_max_transactions: int = opt(10_000, at_least(1))  # server transactions a UDP socket keeps (~7 KB each)
    udp_max_request_size: int = opt(1300, at_least(200))  # bytes; a larger request to a gateway goes over TCP
    # The framing limits' defaults are switchd.sip.DEFAULT_LIMITS's (the only place they are written).
    max_message_size: int = opt(DEFAULT_LIMITS.max_message_size, at_least(512))  # bytes; larger: 513, closed
    max_headers: int = opt(DEFAULT_LIMITS.max_headers, at_least(1))  # header fields per message; more: 400
    max_line_length: int = opt(DEFAULT_LIMITS.max_line_length, at_least(80))  # bytes per line; longer: 400
    max_vias: int = opt(DEFAULT_LIMITS.max_vias, at_least(1))  # Via values per message; more: 400
    send_queue_size: int = opt(100, at_least(1))  # messages queued per connection before it is dropped
    message_timeout: float = opt(10.0, positive)  # seconds from a message's first byte to its last; then closed
    idle_timeout: float = opt(60.0, positive)  # seconds a connection without a call may go without a message
    max_connections: int = opt(0, at_least(0))  # accepted connections; 0: the fd limit less 128 for the node
    max_connections_per_ip: int = opt(0, at_least(0))  # accepted connections from one address; 0: no limit
    domain: str | None = opt(None, HOST)  # the domain whose users this node serves (sip:alice@DOMAIN); None: none
    # what a digest challenge offers, in order (RFC 8760 §2.4: SHA-256 first); ["MD5"] for phones without SHA-256
    digest_algorithms: tuple[str, ...] = opt(("SHA-256", "MD5"), digest_algorithms)

    def connection_settings(self) -> ConnectionSettings:
        """How every SIP connection of the node frames and queues (accepted ones and gateway links)."""
        return ConnectionSettings(max_message_size=self.max_message_size, max_headers=self.max_headers,
                                  max_line_length=self.max_line_length, max_vias=self.max_vias,
                                  send_queue_size=self.send_queue_size, message_timeout=self.message_timeout,
                                  idle_timeout=self.idle_timeout)

    def udp_settings(self, timers: TimerConfig) -> UdpSettings:
        """How every UDP socket of the node parses and keeps its server transactions."""
        return UdpSettings(max_message_size=self.max_message_size, max_headers=self.max_headers,
                           max_line_length=self.max_line_length, max_vias=self.max_vias, timers=timers,
                           max_transactions=self.udp_max_transactions)

    def connection_table(self, rejections: Tally) -> ConnectionTable:
        """The node's table of accepted connections, counting its refusals in `rejections`."""
        return ConnectionTable(max_connections=self.max_connections,
                               max_connections_per_ip=self.max_connections_per_ip, rejections=rejections)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """`[api]`: the HTTP management and billing API (docs/api.md)."""

    listen: Address = Address("127.0.0.1", 8080)  # beyond loopback it needs `token`
    # Bearer token every request but GET /health must carry; None: none (loopback only)
    token: str | None = opt(None, matches(r"[A-Za-z0-9._~+/=-]{16,}",
                                          "a token of at least 16 characters (letters, digits, . _ ~ + / = -)"),
                            secret=True)
    chaos: bool = False  # POST /chaos may kill processes (for demos and fault drills only)
    trace_calls: int = opt(100, at_least(0))  # calls the SIP trace keeps; 0: no trace, and no cost
    trace_messages: int = opt(50, at_least(1))  # messages it keeps per call
    pidfile: Path = Path("data/switchd.pid")  # `switchd run` writes its process id here; <data_dir>/switchd.pid


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    """`[database]`: the billing database (SQLAlchemy URL)."""

    url: str = "sqlite:///data/switchd.sqlite3"  # default: switchd.sqlite3 in data_dir


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingConfig:
    """`[billing]`: rating and the CDR spool."""

    rate_deck: Path | None = None  # CSV or XML rate deck billing loads; None: calls are not rated
    currency: str = opt("USD", matches(r"[A-Z]{3}", "an ISO 4217 currency code"))  # of a CSV deck
    spool: Path = Path("data/cdr-spool")  # where CDRs wait when the database is unavailable
    default_rate_plan: str = opt("default", NAME)  # plan of a CSV deck, and of gateways without one
    # Numbering plan: how dialled national numbers become E.164 (switchd.billing.NumberingPlan).
    country_code: str = opt("1", matches(r"[1-9][0-9]{0,2}", "a country calling code (1-3 digits)"))
    international_prefix: str = opt("011", matches(r"[0-9]{1,4}", "digits"))  # dialled before a country code
    trunk_prefix: str = opt("1", matches(r"[0-9]{0,2}", "digits"))  # dialled before a national number
    national_digits: int = opt(10, at_least(4))  # length of a national significant number
    # A CDR write the database has not finished within this many seconds counts as an outage: it
    # and every later one go to the spool (and the BYE waiting for it is answered) until it is back.
    write_deadline: float = opt(0.25, positive)
    heartbeat_interval: float = opt(2.0, positive)  # a crashed run's open CDRs are billed up to its last beat


@dataclass(frozen=True, slots=True, kw_only=True)
class TimersConfig:
    """`[timers]`, in seconds: SIP transaction timers (RFC 3261 §17) and call limits."""

    t1: float = opt(0.5, positive)  # RTT estimate; retransmit and timeout base
    t2: float = opt(4.0, positive)  # retransmit interval cap for non-INVITE requests and 2xx; >= t1
    t4: float = opt(5.0, positive)  # maximum time a message stays in the network
    no_answer: float = opt(60.0, positive)  # ringing longer than this: CANCEL the B-leg, 480 the caller
    max_call_duration: float = opt(3600.0, positive)  # answered calls longer than this: BYE both legs
    drain_timeout: float = opt(30.0, at_least(0))  # on SIGTERM, how long calls may finish before BYE

    def sip_timers(self) -> TimerConfig:
        """The RFC 3261 timers every transaction of the node runs on."""
        return TimerConfig(t1=self.t1, t2=self.t2, t4=self.t4)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """`[limits]`: admission control; a new call beyond any of these gets 503 with Retry-After at once."""

    max_calls: int = opt(1000, at_least(1))  # concurrent calls (the calls supervisor's max_children)
    cps: float = opt(200.0, at_least(0))  # new calls a second the node takes in the long run; 0: no limit
    burst: int = opt(200, at_least(1))  # new calls taken at once above cps (the bucket's size)
    per_ip_cps: float = opt(0.0, at_least(0))  # new calls a second from one source address; 0: no limit
    per_ip_burst: int = opt(20, at_least(1))  # new calls from one address taken at once above per_ip_cps
    register_per_ip_rate: float = opt(10.0, at_least(0))  # REGISTERs a second from one address; 0: no limit
    register_per_ip_burst: int = opt(50, at_least(1))  # REGISTERs from one address taken at once above it
    # seconds: while the event loop's mean lateness is above this, new calls get 503 (switchd.otp.LoopLag,
    # measured every loop_lag_interval); 0: off, as it is by default — set it for the machine the node runs on
    max_loop_lag: float = opt(0.0, at_least(0))
    loop_lag_interval: float = opt(0.01, positive)  # seconds between two measures of the loop's lateness


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    """`[auth]`: digest authentication (RFC 3261 §22, MD5 and SHA-256) of the sources the ACL does not trust."""

    # challenge (407) new INVITEs from sources acl.trusted does not list; None (left out): do so when the
    # node serves a domain (sip.domain) or trusts a network (acl.trusted), else not. REGISTER always is.
    enabled: bool | None = None
    realm: str = opt("switchd", REALM)  # of every challenge, and of the accounts' HA1s
    nonce_ttl: float = opt(300.0, positive)  # seconds a nonce is good for; an older one gets stale=true
    max_nonces: int = opt(10_000, at_least(1))  # nonces whose count is remembered (replay protection)
    accounts_refresh: float = opt(10.0, positive)  # seconds between re-reads of the accounts table


@dataclass(frozen=True, slots=True, kw_only=True)
class AclConfig:
    """`[acl]`: IP networks by direction — who may send requests in, and where registered phones may be."""

    trusted: tuple[str, ...] = opt((), each(cidr))  # in: carriers, gateways; their INVITEs are not challenged
    deny: tuple[str, ...] = opt((), each(cidr))  # in: every request from them gets 403
    contact_allow: tuple[str, ...] = opt((), each(cidr))  # out: a registered Contact must be in one; (): anywhere
    contact_deny: tuple[str, ...] = opt((), each(cidr))  # out: a registered Contact in one is refused


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrarConfig:
    """`[registrar]`: REGISTER (RFC 3261 §10) and calls to registered users."""

    enabled: bool = True  # false: REGISTER gets 405 and calls are routed by prefix only
    domains: tuple[str, ...] = opt((), each(HOST))  # more names of the domain served (sip.domain, sip.listen's host)
    min_expires: int = opt(60, at_least(1))  # a shorter registration gets 423 Interval Too Brief
    max_expires: int = opt(3600, at_least(1))  # a longer one is granted this
    default_expires: int = opt(3600, at_least(1))  # when the REGISTER asks for none
    max_contacts: int = opt(10, at_least(1))  # contacts per user; more: 403


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingConfig:
    """`[routing]` plus the gateways and routes (inline or from `routes_file`)."""

    policy: str = "priority_weight"  # a name in switchd.switch.POLICIES
    routes_file: Path | None = None  # TOML file with [[gateways]] and [[routes]]; None: inline
    gateways: tuple[Gateway, ...] = ()
    table: RouteTable = field(default_factory=RouteTable)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration of one switchd node."""

    path: Path | None = None  # the file it was loaded from; None: from a string
    node: str = opt("switchd", NAME)  # names this node in CDRs and logs
    workers: int = opt(1, at_least(0))  # `switchd run` processes sharing the SIP port (docs/scale.md); 0: one per core
    data_dir: Path = Path("data")  # default home of the SQLite database and the CDR spool
    sip: SipConfig = field(default_factory=SipConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    timers: TimersConfig = field(default_factory=TimersConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    acl: AclConfig = field(default_factory=AclConfig)
    registrar: RegistrarConfig = field(default_factory=RegistrarConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)

    # The translation into each component's settings lives here, with the sections it reads: a
    # component never imports the configuration (config sits above them in the layers).

    def call_settings(self, cdrs: CdrQueue) -> CallSettings:
        """What every CallSession of this node shares; its CDR steps go to `cdrs`."""
        udp = self.sip.listen_udp
        return CallSettings(node=self.node, local_address=str(self.sip.listen), timers=self.timers.sip_timers(),
                            no_answer=self.timers.no_answer, max_call_duration=self.timers.max_call_duration,
                            cdrs=cdrs, udp_address=str(udp[0]) if udp else None,
                            udp_max_request_size=self.sip.udp_max_request_size)

    def admission(self) -> Admission:
        """The node's Admission: the drain, the calls per second in all and per source, the REGISTERs per
        source, and the event loop's lateness when ``limits.max_loop_lag`` is set (its `LoopLag` is
        ``admission.loop_lag``, for the tree's LagMonitor to fill)."""
        limits = self.limits
        lag = LoopLag() if limits.max_loop_lag > 0 else None
        return Admission(drain_retry_after=max(self.timers.drain_timeout, 1.0), cps=limits.cps,
                         burst=limits.burst, per_ip_cps=limits.per_ip_cps, per_ip_burst=limits.per_ip_burst,
                         register_per_ip_rate=limits.register_per_ip_rate,
                         register_per_ip_burst=limits.register_per_ip_burst,
                         loop_lag=lag, max_loop_lag=limits.max_loop_lag)

    def acl_lists(self) -> Acl:
        """The node's access lists (checked at load: every entry is a network)."""
        acl = self.acl
        return Acl.from_lists(trusted=acl.trusted, deny=acl.deny, contact_allow=acl.contact_allow,
                              contact_deny=acl.contact_deny)

    def authenticator(self, accounts: AccountLookup) -> Authenticator:
        """The node's digest checks: `auth.realm`, `sip.digest_algorithms`, nonces signed with a secret
        made now (a restart makes every nonce stale), accounts looked up with `accounts`."""
        auth = self.auth
        nonces = Nonces(secrets.token_bytes(32), ttl=auth.nonce_ttl, max_tracked=auth.max_nonces)
        return Authenticator(auth.realm, nonces, accounts, tuple(DigestAlgorithm(a) for a in self.sip.digest_algorithms))

    def served_domains(self) -> frozenset[str]:
        """The names of the domain whose users the registrar serves: sip.domain, registrar.domains and
        the host sip.listen names (a phone may be set up with the switch's address as its domain).

        Lower case, IPv6 addresses in brackets (as a SIP URI writes them). A wildcard listen address
        (0.0.0.0, ::) names no domain.
        """
        domain = () if self.sip.domain is None else (self.sip.domain,)
        return frozenset(d.lower() for d in (*domain, *self.registrar.domains)) | self._listen_domain()

    def _listen_domain(self) -> frozenset[str]:
        host = self.sip.listen.host
        return frozenset() if host in ("0.0.0.0", "::") else frozenset({(f"[{host}]" if ":" in host else host).lower()})

    def address_only_domains(self) -> frozenset[str]:
        """Of `served_domains`, the names only sip.listen gives: there a name without an account is
        routed by prefix, not refused 404 (SIPp and other tools dial `service@<address>`)."""
        domain = () if self.sip.domain is None else (self.sip.domain,)
        return self._listen_domain() - {d.lower() for d in (*domain, *self.registrar.domains)}

    def registrar_settings(self, acl: Acl, contact_link: Callable[[Gateway], ChildSpec] | None = None,
                           ) -> RegistrarSettings:
        """The node's RegistrarSettings; with the registrar off it serves no domain. `contact_link`
        builds the child spec of a link to a contact being called (`switchd.switch.contact_link_spec`)."""
        reg = self.registrar
        return RegistrarSettings(
            node=self.node, realm=self.auth.realm, domains=self.served_domains() if reg.enabled else frozenset(),
            address_only=self.address_only_domains() if reg.enabled else frozenset(),
            limits=RegisterLimits(min_expires=reg.min_expires, max_expires=reg.max_expires,
                                  default_expires=reg.default_expires, max_contacts=reg.max_contacts),
            acl=acl, database_url=self.database.url, accounts_refresh=self.auth.accounts_refresh,
            contact_link=contact_link)

    def challenges_calls(self) -> bool:
        """Whether new INVITEs from untrusted sources are challenged (`auth.enabled`, see `AuthConfig`).

        Left to itself, a node challenges once it has phones (a domain) or knows whom it trusts (an
        ACL): then an INVITE from anywhere else must authenticate. A node with neither is a plain
        trunking switch, open to whoever reaches its port, as switchd was before it had accounts.
        """
        if self.auth.enabled is not None:
            return self.auth.enabled
        return self.sip.domain is not None or bool(self.acl.trusted)

    def trunk_settings(self) -> TrunkSettings:
        """How the node's outbound registrations run: its SIP addresses (their Via and Contact) and timers."""
        udp = self.sip.listen_udp
        return TrunkSettings(local_address=str(self.sip.listen), udp_address=str(udp[0]) if udp else None,
                             timers=self.timers.sip_timers())

    def billing_store(self, deck: RateDeck | None = None) -> BillingStoreConfig:
        """How the node's BillingStore runs; `deck`: `billing.rate_deck` already read (else the store reads it)."""
        b = self.billing
        return BillingStoreConfig(
            url=self.database.url, node=self.node, spool_dir=b.spool, default_plan=b.default_rate_plan,
            numbering=NumberingPlan(country_code=b.country_code, international_prefix=b.international_prefix,
                                    trunk_prefix=b.trunk_prefix, national_digits=b.national_digits),
            rate_deck=b.rate_deck, deck=deck, deck_currency=b.currency, write_deadline=b.write_deadline,
            heartbeat_interval=b.heartbeat_interval,
        )
