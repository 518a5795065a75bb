"""The configuration model: frozen dataclasses, one per section, with their defaults and checks.

Each field's comment is its documentation; `config/switchd.toml` repeats it for the user. A
field's `check` (in its metadata) is applied by the loader when the key is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchd.switch import Gateway, RouteTable


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


def opt(default: Any, check: Check | None = None) -> Any:
    """A dataclass field with a default and a check the loader applies when it is given."""
    return field(default=default, metadata={"check": check} if check else {})


NAME = matches(r"[A-Za-z0-9][A-Za-z0-9_.@-]*", "a name (letters, digits, _ . @ -)")
DIGITS = r"[0-9+*#]*"


# --- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SipConfig:
    """`[sip]`: the SIP-over-TCP listener and the limits that protect it from bad peers."""

    listen: Address = Address("127.0.0.1", 5060)
    max_message_size: int = opt(65_535, at_least(512))  # bytes; larger: 513 and the connection closes
    max_headers: int = opt(100, at_least(1))  # header fields per message; more: 400
    max_line_length: int = opt(8_192, at_least(80))  # bytes per start/header line; longer: 400
    max_vias: int = opt(70, at_least(1))  # Via values per message (Max-Forwards' usual 70); more: 400
    send_queue_size: int = opt(100, at_least(1))  # messages queued per connection before it is dropped


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """`[api]`: the HTTP management and billing API."""

    listen: Address = Address("127.0.0.1", 8080)


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


@dataclass(frozen=True, slots=True, kw_only=True)
class TimersConfig:
    """`[timers]`, in seconds: SIP transaction timers (RFC 3261 §17) and call limits."""

    t1: float = opt(0.5, positive)  # RTT estimate; retransmit and timeout base
    t2: float = opt(4.0, positive)  # retransmit interval cap for non-INVITE requests and 2xx; >= t1
    t4: float = opt(5.0, positive)  # maximum time a message stays in the network
    no_answer: float = opt(60.0, positive)  # ringing longer than this: CANCEL the B-leg, 480 the caller
    max_call_duration: float = opt(3600.0, positive)  # answered calls longer than this: BYE both legs
    drain_timeout: float = opt(30.0, at_least(0))  # on SIGTERM, how long calls may finish before BYE


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """`[limits]`: admission control."""

    max_calls: int = opt(1000, at_least(1))  # concurrent calls (the calls supervisor's max_children)


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
    data_dir: Path = Path("data")  # default home of the SQLite database and the CDR spool
    sip: SipConfig = field(default_factory=SipConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    timers: TimersConfig = field(default_factory=TimersConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
