"""switchd's configuration: a TOML file → tomllib → frozen dataclasses, validated at load.

`switchd run` reads `config/switchd.toml` (see `default_config_path()`); `config/switchd.toml` in the
repository is the shipped default with every key documented. The layout:

    node, data_dir                       top-level keys
    [sip] [api] [database] [billing]     one table per component; each component is handed its
    [timers] [limits] [routing]          own section (`Router(cfg.routing)`), there is no global
    [[gateways]] [[routes]]              inline, or in the TOML file `routing.routes_file` names

Rules a reader of an error message can rely on:

* Every problem is a `ConfigError` whose message is `FILE:LINE: KEY: what is wrong`, KEY dotted as
  a user would point at it (`sip.lisen`, `routes[2].gateways[0]`). tomllib reports no positions
  for keys, so `_LineIndex` scans the text (tables, arrays of tables, dotted keys, inline tables
  and arrays) for the line where each key is written; a missing key is reported at its table.
* A TOML syntax error keeps tomllib's own line and column.
* An unknown key, a wrong type (TOML integers are accepted where a float is expected, booleans
  never as numbers), a bad value (an unparseable `host:port`, a negative timer, a route naming an
  unknown gateway) is refused; nothing is defaulted silently except absent keys.
* Relative paths (`data_dir`, `billing.*`, `routing.routes_file`, the file of a relative
  `sqlite:///` URL) are relative to the directory of the file they are written in, so
  `switchd run` behaves the same from any working directory.

Routes may be reloaded while running (SIGHUP): `reload_routes(config)` reads them again from
where they came from and validates them fully; an invalid file raises and changes nothing.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from switchd.switch import POLICIES, Gateway, Route, RouteTable, Target

__all__ = [
    "Address",
    "ApiConfig",
    "BillingConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "LimitsConfig",
    "RoutingConfig",
    "SipConfig",
    "TimersConfig",
    "default_config_path",
    "load",
    "load_routes",
    "loads",
    "reload_routes",
]

_KeyPath = tuple[str | int, ...]
_T = TypeVar("_T")


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

_Check = Callable[[Any], "str | None"]


def _at_least(minimum: float) -> _Check:
    return lambda v: None if v >= minimum else f"must be >= {minimum:g}, not {v!r}"


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be > 0, not {v!r}"


def _matches(pattern: str, what: str) -> _Check:
    compiled = re.compile(pattern)
    return lambda v: None if compiled.fullmatch(v) else f"{v!r} is not {what}"


def _opt(default: Any, check: _Check | None = None) -> Any:
    """A dataclass field with a default and a check `_section()` applies when it is given."""
    return field(default=default, metadata={"check": check} if check else {})


_NAME = _matches(r"[A-Za-z0-9][A-Za-z0-9_.@-]*", "a name (letters, digits, _ . @ -)")
_DIGITS = r"[0-9+*#]*"


# --- sections ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SipConfig:
    """`[sip]`: the SIP-over-TCP listener and the limits that protect it from bad peers."""

    listen: Address = Address("127.0.0.1", 5060)
    max_message_size: int = _opt(65_535, _at_least(512))  # bytes; larger: 513 and the connection closes
    max_headers: int = _opt(100, _at_least(1))  # header fields per message; more: 400
    max_line_length: int = _opt(8_192, _at_least(80))  # bytes per start/header line; longer: 400
    max_vias: int = _opt(70, _at_least(1))  # Via values per message (Max-Forwards' usual 70); more: 400
    send_queue_size: int = _opt(100, _at_least(1))  # messages queued per connection before it is dropped


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
    currency: str = _opt("USD", _matches(r"[A-Z]{3}", "an ISO 4217 currency code"))  # of a CSV deck
    spool: Path = Path("data/cdr-spool")  # where CDRs wait when the database is unavailable
    default_rate_plan: str = _opt("default", _NAME)  # plan of a CSV deck, and of gateways without one
    # Numbering plan: how dialled national numbers become E.164 (switchd.billing.NumberingPlan).
    country_code: str = _opt("1", _matches(r"[1-9][0-9]{0,2}", "a country calling code (1-3 digits)"))
    international_prefix: str = _opt("011", _matches(r"[0-9]{1,4}", "digits"))  # dialled before a country code
    trunk_prefix: str = _opt("1", _matches(r"[0-9]{0,2}", "digits"))  # dialled before a national number
    national_digits: int = _opt(10, _at_least(4))  # length of a national significant number


@dataclass(frozen=True, slots=True, kw_only=True)
class TimersConfig:
    """`[timers]`, in seconds: SIP transaction timers (RFC 3261 §17) and call limits."""

    t1: float = _opt(0.5, _positive)  # RTT estimate; retransmit and timeout base
    t2: float = _opt(4.0, _positive)  # retransmit interval cap for non-INVITE requests and 2xx; >= t1
    t4: float = _opt(5.0, _positive)  # maximum time a message stays in the network
    no_answer: float = _opt(60.0, _positive)  # ringing longer than this: CANCEL the B-leg, 480 the caller
    max_call_duration: float = _opt(3600.0, _positive)  # answered calls longer than this: BYE both legs
    drain_timeout: float = _opt(30.0, _at_least(0))  # on SIGTERM, how long calls may finish before BYE


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    """`[limits]`: admission control."""

    max_calls: int = _opt(1000, _at_least(1))  # concurrent calls (the calls supervisor's max_children)


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
    node: str = _opt("switchd", _NAME)  # names this node in CDRs and logs
    data_dir: Path = Path("data")  # default home of the SQLite database and the CDR spool
    sip: SipConfig = field(default_factory=SipConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    timers: TimersConfig = field(default_factory=TimersConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)


# --- entry points --------------------------------------------------------------------------------


def default_config_path() -> Path:
    """`config/switchd.toml` under the current directory: what `switchd run` uses without --config."""
    return Path.cwd() / "config" / "switchd.toml"


def load(path: Path | str) -> Config:
    """The configuration in the TOML file `path`, validated; raises ConfigError."""
    path = Path(path)
    return _config(_Source.parse(_read(path), str(path), path.resolve().parent), path)


def loads(text: str, *, where: str = "<string>", base_dir: Path | None = None) -> Config:
    """The configuration in TOML `text`; `where` names it in errors, relative paths use `base_dir`.

    `base_dir` defaults to the current directory. Raises ConfigError.
    """
    return _config(_Source.parse(text, where, (base_dir or Path.cwd()).resolve()), None)


def load_routes(path: Path | str) -> RouteTable:
    """The routing table in a routes file ([[gateways]] and [[routes]] only), fully validated.

    Raises ConfigError; nothing is returned from an invalid file, so a failed reload changes nothing.
    """
    path = Path(path)
    source = _Source.parse(_read(path), str(path), path.resolve().parent)
    source.only(source.raw, (), {"gateways", "routes"})
    _, table = _routing_data(source, source.raw)
    return table


def reload_routes(config: Config) -> RouteTable:
    """The routing table read again from where `config` got it (its routes_file, or its own file)."""
    if config.routing.routes_file is not None:
        return load_routes(config.routing.routes_file)
    if config.path is None:
        raise ConfigError("<string>", "", None, "configuration was not loaded from a file: nothing to reload")
    return load(config.path).routing.table


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(str(path), "", None, f"cannot read: {reason}") from exc


# --- building the dataclasses --------------------------------------------------------------------


class _Source:
    """One parsed TOML file: its table, where it came from, and the line of each key."""

    def __init__(self, raw: dict[str, Any], where: str, base_dir: Path, lines: _LineIndex) -> None:
        self.raw = raw
        self.where = where
        self.base_dir = base_dir
        self.lines = lines

    @classmethod
    def parse(cls, text: str, where: str, base_dir: Path) -> _Source:
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # its message has line and column already
            found = re.search(r"at line (\d+)", str(exc))
            line = int(found[1]) if found else len(text.splitlines()) or 1  # "at end of document"
            raise ConfigError(where, "", line, f"TOML syntax error: {exc}") from None
        return cls(raw, where, base_dir, _LineIndex(text))

    def error(self, key: _KeyPath, reason: str) -> ConfigError:
        return ConfigError(self.where, _dotted(key), self.lines.line_of(key), reason)

    def table(self, value: object, key: _KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {_toml_type(value)}")
        return value

    def array(self, value: object, key: _KeyPath) -> list[Any]:
        if not isinstance(value, list):
            raise self.error(key, f"expected an array, got {_toml_type(value)}")
        return value

    def only(self, table: Mapping[str, Any], key: _KeyPath, allowed: set[str]) -> None:
        for name in table:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(sorted(allowed))}"
                raise self.error((*key, name), f"unknown key; {hint}")

    def path(self, value: str) -> Path:
        return (self.base_dir / value).resolve()


def _config(source: _Source, path: Path | None) -> Config:
    raw = source.raw
    sections: dict[str, type[Any]] = {
        "sip": SipConfig, "api": ApiConfig, "database": DatabaseConfig, "billing": BillingConfig,
        "timers": TimersConfig, "limits": LimitsConfig,
    }
    source.only(raw, (), {"node", "data_dir", "routing", "gateways", "routes", *sections})
    top = _section(Config, {k: v for k, v in raw.items() if k in ("node", "data_dir")}, (), source,
                   allowed={"node", "data_dir"})
    data_dir = top.data_dir if "data_dir" in raw else source.path("data")
    built = {name: _section(cls, raw.get(name, {}), (name,), source) for name, cls in sections.items()}

    database: DatabaseConfig = built["database"]
    if "url" in raw.get("database", {}):
        database = DatabaseConfig(url=_sqlite_relative_to(database.url, source, ("database", "url")))
    else:
        database = DatabaseConfig(url=f"sqlite:///{data_dir / 'switchd.sqlite3'}")
    billing: BillingConfig = built["billing"]
    if "spool" not in raw.get("billing", {}):
        billing = replace(billing, spool=data_dir / "cdr-spool")
    timers: TimersConfig = built["timers"]
    if timers.t2 < timers.t1:
        raise source.error(("timers", "t2"), f"must be >= t1 ({timers.t1:g}), not {timers.t2:g}")

    return Config(
        path=path, node=top.node, data_dir=data_dir, sip=built["sip"], api=built["api"],
        database=database, billing=billing, timers=timers, limits=built["limits"],
        routing=_routing(source, raw),
    )


def _sqlite_relative_to(url: str, source: _Source, key: _KeyPath) -> str:
    if "://" not in url:
        raise source.error(key, f"{url!r} is not a database URL (e.g. sqlite:///data/switchd.sqlite3)")
    scheme, _, rest = url.partition(":///")
    if scheme.split("+")[0] == "sqlite" and rest and rest != ":memory:" and not rest.startswith("/"):
        return f"{scheme}:///{source.path(rest)}"
    return url


def _routing(source: _Source, raw: dict[str, Any]) -> RoutingConfig:
    table = source.table(raw.get("routing", {}), ("routing",))
    source.only(table, ("routing",), {"policy", "routes_file"})
    policy = table.get("policy", "priority_weight")
    if not isinstance(policy, str):
        raise source.error(("routing", "policy"), f"expected a string, got {_toml_type(policy)}")
    if policy not in POLICIES:
        raise source.error(("routing", "policy"),
                           f"unknown routing policy {policy!r}; known: {', '.join(sorted(POLICIES))}")
    routes_file = table.get("routes_file")
    if routes_file is None:
        gateways, routes = _routing_data(source, raw)
        return RoutingConfig(policy=policy, gateways=gateways, table=routes)
    if not isinstance(routes_file, str):
        raise source.error(("routing", "routes_file"), f"expected a string, got {_toml_type(routes_file)}")
    for inline in ("gateways", "routes"):
        if inline in raw:
            at = source.lines.line_of(("routing", "routes_file"))
            raise source.error((inline,), f"routing.routes_file (line {at}) is set: gateways and routes "
                                          "belong in that file, not here")
    path = source.path(routes_file)
    if not path.is_file():
        raise source.error(("routing", "routes_file"), f"no such file: {path}")
    sub = _Source.parse(_read(path), str(path), path.resolve().parent)
    sub.only(sub.raw, (), {"gateways", "routes"})
    gateways, routes = _routing_data(sub, sub.raw)
    return RoutingConfig(policy=policy, routes_file=path, gateways=gateways, table=routes)


def _routing_data(source: _Source, raw: Mapping[str, Any]) -> tuple[tuple[Gateway, ...], RouteTable]:
    gateways: dict[str, Gateway] = {}
    for i, entry in enumerate(source.array(raw.get("gateways", []), ("gateways",))):
        key: _KeyPath = ("gateways", i)
        table = source.table(entry, key)
        source.only(table, key, {"name", "address", "rate_plan"})
        name = _required(source, table, key, "name", str, _NAME)
        if name in gateways:
            raise source.error((*key, "name"), f"duplicate gateway name {name!r}")
        address = _address(source, _required(source, table, key, "address", str), (*key, "address"))
        rate_plan = _optional(source, table, key, "rate_plan", str, _NAME)
        gateways[name] = Gateway(name=name, host=address.host, port=address.port, rate_plan=rate_plan)

    routes: list[Route] = []
    first_of_id: dict[str, int] = {}
    for i, entry in enumerate(source.array(raw.get("routes", []), ("routes",))):
        key = ("routes", i)
        table = source.table(entry, key)
        source.only(table, key, {"id", "prefix", "strip", "prepend", "gateways"})
        prefix = _required(source, table, key, "prefix", str, _matches(_DIGITS, "a number prefix (0-9 + * #)"))
        route_id = _optional(source, table, key, "id", str, _NAME) or prefix or "default"
        if route_id in first_of_id:
            raise source.error((*key, "id") if "id" in table else key,
                               f"duplicate route id {route_id!r} (also routes[{first_of_id[route_id]}]);"
                               " give each route with the same prefix its own id")
        first_of_id[route_id] = i
        strip = _optional(source, table, key, "strip", int, _at_least(0)) or 0
        prepend = _optional(source, table, key, "prepend", str, _matches(_DIGITS, "digits (0-9 + * #)")) or ""
        targets = _targets(source, table, key, gateways)
        routes.append(Route(id=route_id, prefix=prefix, targets=targets, strip=strip, prepend=prepend))
    return tuple(gateways.values()), RouteTable(routes)


def _targets(source: _Source, route: Mapping[str, Any], key: _KeyPath,
             gateways: Mapping[str, Gateway]) -> tuple[Target, ...]:
    """A route's `gateways`: names, or tables {name, priority, weight}; priority defaults to position."""
    entries = source.array(_required(source, route, key, "gateways", list), (*key, "gateways"))
    if not entries:
        raise source.error((*key, "gateways"), "a route needs at least one gateway")
    targets: list[Target] = []
    for j, entry in enumerate(entries):
        at: _KeyPath = (*key, "gateways", j)
        priority, weight = j + 1, 1
        if isinstance(entry, str):
            name, name_key = entry, at
        elif isinstance(entry, dict):
            source.only(entry, at, {"name", "priority", "weight"})
            name, name_key = _required(source, entry, at, "name", str), (*at, "name")
            given = _optional(source, entry, at, "priority", int, _at_least(0))
            priority = priority if given is None else given
            given = _optional(source, entry, at, "weight", int, _at_least(0))
            weight = weight if given is None else given
        else:
            raise source.error(at, f"expected a gateway name or a table {{name, priority, weight}}, "
                                   f"got {_toml_type(entry)}")
        if name not in gateways:
            known = ", ".join(sorted(gateways)) or "none defined"
            raise source.error(name_key, f"unknown gateway {name!r} (gateways: {known})")
        targets.append(Target(gateway=gateways[name], priority=priority, weight=weight))
    return tuple(targets)


def _required(source: _Source, table: Mapping[str, Any], key: _KeyPath, name: str, kind: type[_T],
              check: _Check | None = None) -> _T:
    if name not in table:
        raise source.error(key, f"missing key {name!r}")
    value = _optional(source, table, key, name, kind, check)
    assert value is not None
    return value


def _optional(source: _Source, table: Mapping[str, Any], key: _KeyPath, name: str, kind: type[_T],
              check: _Check | None = None) -> _T | None:
    if name not in table:
        return None
    value = _convert(kind, table[name], (*key, name), source)
    if check is not None and (problem := check(value)) is not None:
        raise source.error((*key, name), problem)
    return typing.cast(_T, value)


def _section(cls: type[_T], raw: object, key: _KeyPath, source: _Source,
             *, allowed: set[str] | None = None) -> _T:
    """`cls` from the TOML table `raw`: known keys only, each converted to its field's type and checked.

    `allowed` limits the keys (default: every field of `cls`); absent keys keep their defaults.
    """
    table = source.table(raw, key)
    by_name = {f.name: f for f in fields(typing.cast(Any, cls))}
    source.only(table, key, set(by_name) if allowed is None else allowed)
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in table.items():
        converted = _convert(hints[name], value, (*key, name), source)
        check = by_name[name].metadata.get("check")
        if check is not None and (problem := check(converted)) is not None:
            raise source.error((*key, name), problem)
        values[name] = converted
    return cls(**values)


def _convert(hint: Any, value: object, key: _KeyPath, source: _Source) -> Any:
    if isinstance(hint, types.UnionType):  # `X | None`: TOML has no null, so only X can appear
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    expected = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
                Path: "a path (string)", Address: "an address 'host:port' (string)"}[hint]
    ok = {
        str: isinstance(value, str), Path: isinstance(value, str), Address: isinstance(value, str),
        bool: isinstance(value, bool), list: isinstance(value, list),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
    }[hint]
    if not ok:
        raise source.error(key, f"expected {expected}, got {_toml_type(value)} {value!r}")
    if hint is float:
        return float(typing.cast(float, value))
    if hint is Path:
        return source.path(typing.cast(str, value))
    if hint is Address:
        return _address(source, typing.cast(str, value), key)
    return value


_ADDRESS = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p6>\d+)|(?P<host>[A-Za-z0-9.-]+):(?P<port>\d+)")


def _address(source: _Source, text: str, key: _KeyPath) -> Address:
    found = _ADDRESS.fullmatch(text)
    if found is None:
        raise source.error(key, f"{text!r} is not host:port (e.g. 127.0.0.1:5060, [::1]:5060)")
    host, port = (found["v6"], int(found["p6"])) if found["v6"] else (found["host"], int(found["port"]))
    if not 1 <= port <= 65_535:
        raise source.error(key, f"port {port} in {text!r} is not in 1..65535")
    return Address(host, port)


def _toml_type(value: object) -> str:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
                       (dict, "table"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "date/time"


def _dotted(key: _KeyPath) -> str:
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", part) is not None
            text = part if bare else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out += f".{text}" if out else text
    return out


# --- where each key is written -------------------------------------------------------------------


class _LineIndex:
    """The line of every table, key and array element of a TOML text tomllib has accepted.

    A path is a tuple of keys and array indices: `("routes", 2, "gateways", 0)`. It follows TOML's
    own rules: `[a.b]` and `[[a.b]]` headers (an array of tables gets the next index; a header
    under one refers to its latest element), dotted keys, inline tables and arrays spanning lines.
    The first place a path is written wins; `line_of` falls back to the nearest enclosing path.
    """

    _BARE = re.compile(r"[A-Za-z0-9_-]+")
    _SCALAR = re.compile(r"[^,\]}\r\n#]*")  # a number, boolean or date/time runs to a delimiter

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self._lines: dict[_KeyPath, int] = {}
        self._arrays: dict[_KeyPath, int] = {}  # array-of-tables path → elements seen so far
        self._scan()

    def line_of(self, key: _KeyPath) -> int | None:
        for length in range(len(key), 0, -1):
            line = self._lines.get(key[:length])
            if line is not None:
                return line
        return None

    def _line(self) -> int:
        return bisect_left(self._newlines, self._pos) + 1

    def _mark(self, path: _KeyPath, line: int) -> None:
        for length in range(1, len(path) + 1):
            self._lines.setdefault(path[:length], line)

    def _peek(self, n: int = 1) -> str:
        return self._text[self._pos : self._pos + n]

    def _skip(self, *, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            ch = text[self._pos]
            if ch in " \t" or (newlines and ch in "\r\n"):
                self._pos += 1
            elif newlines and ch == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _scan(self) -> None:
        table: _KeyPath = ()
        while True:
            self._skip(newlines=True)
            if self._pos >= len(self._text):
                return
            line = self._line()
            if self._peek(2) == "[[":
                self._pos += 2
                table = self._resolve(self._keys(), array=True)
                self._pos += 2
                self._mark(table, line)
            elif self._peek() == "[":
                self._pos += 1
                table = self._resolve(self._keys(), array=False)
                self._pos += 1
                self._mark(table, line)
            else:
                path = (*table, *self._keys())
                self._pos += 1
                self._mark(path, line)
                self._value(path)

    def _resolve(self, keys: list[str], *, array: bool) -> _KeyPath:
        path: _KeyPath = ()
        for i, key in enumerate(keys):
            path = (*path, key)
            if array and i == len(keys) - 1:
                index = self._arrays.get(path, 0)
                self._arrays[path] = index + 1
                path = (*path, index)
            elif path in self._arrays:
                path = (*path, self._arrays[path] - 1)
        return path

    def _keys(self) -> list[str]:
        """A dotted key, up to (not past) the `=` or `]` after it."""
        keys: list[str] = []
        while True:
            self._skip(newlines=False)
            if self._peek() in ('"', "'"):
                start = self._pos
                self._string()
                keys.append(tomllib.loads(f"k = {self._text[start:self._pos]}")["k"])
            else:
                found = self._BARE.match(self._text, self._pos)
                if found is None:  # cannot happen in text tomllib accepted; stop rather than loop
                    self._pos = len(self._text)
                    return keys
                keys.append(found[0])
                self._pos = found.end()
            self._skip(newlines=False)
            if self._peek() != ".":
                return keys
            self._pos += 1

    def _value(self, path: _KeyPath) -> None:
        self._skip(newlines=False)
        ch = self._peek()
        if ch in ('"', "'"):
            self._string()
        elif ch == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if self._peek() in ("]", ""):
                    self._pos += 1
                    return
                self._mark((*path, index), self._line())
                self._value((*path, index))
                index += 1
                self._skip(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
        elif ch == "{":
            self._pos += 1
            while True:
                self._skip(newlines=True)
                if self._peek() in ("}", ""):
                    self._pos += 1
                    return
                line = self._line()
                sub = (*path, *self._keys())
                self._pos += 1
                self._mark(sub, line)
                self._value(sub)
                self._skip(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
        else:
            found = self._SCALAR.match(self._text, self._pos)
            assert found is not None
            self._pos = found.end()

    def _string(self) -> None:
        text, quote = self._text, self._peek()
        if self._peek(3) == quote * 3:
            self._pos += 3
            while self._pos < len(text):
                if quote == '"' and text[self._pos] == "\\":
                    self._pos += 2
                elif text.startswith(quote * 3, self._pos):
                    self._pos += 3
                    while self._peek() == quote:  # up to two quotes may end the content
                        self._pos += 1
                    return
                else:
                    self._pos += 1
            return
        self._pos += 1
        while self._pos < len(text) and text[self._pos] != quote:
            self._pos += 2 if quote == '"' and text[self._pos] == "\\" else 1
        self._pos += 1
