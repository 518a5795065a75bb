"""Reading configuration files: TOML → the dataclasses of `_model`, every value checked.

Each refusal is a ConfigError naming the file, the line (from `_lines.LineIndex`) and the dotted key.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

from switchd.api import is_loopback
from switchd.switch import POLICIES, Gateway, Route, RouteTable, Target, Transport, TrunkRegistration

from ._lines import KeyPath, LineIndex, dotted
from ._model import (
    DIGITS,
    HOST,
    NAME,
    USER,
    AclConfig,
    Address,
    ApiConfig,
    AuthConfig,
    BillingConfig,
    Check,
    Config,
    ConfigError,
    DatabaseConfig,
    LimitsConfig,
    RegistrarConfig,
    RoutingConfig,
    SipConfig,
    TimersConfig,
    at_least,
    matches,
)

_T = TypeVar("_T")


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

    def __init__(self, raw: dict[str, Any], where: str, base_dir: Path, lines: LineIndex) -> None:
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
        return cls(raw, where, base_dir, LineIndex(text))

    def error(self, key: KeyPath, reason: str) -> ConfigError:
        return ConfigError(self.where, dotted(key), self.lines.line_of(key), reason)

    def table(self, value: object, key: KeyPath) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {_toml_type(value)}")
        return value

    def array(self, value: object, key: KeyPath) -> list[Any]:
        if not isinstance(value, list):
            raise self.error(key, f"expected an array, got {_toml_type(value)}")
        return value

    def only(self, table: Mapping[str, Any], key: KeyPath, allowed: set[str]) -> None:
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
        "timers": TimersConfig, "limits": LimitsConfig, "auth": AuthConfig, "acl": AclConfig,
        "registrar": RegistrarConfig,
    }
    top_keys = {"node", "data_dir", "workers"}
    source.only(raw, (), {*top_keys, "routing", "gateways", "routes", *sections})
    top = _section(Config, {k: v for k, v in raw.items() if k in top_keys}, (), source, allowed=top_keys)
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
    api: ApiConfig = built["api"]
    if "pidfile" not in raw.get("api", {}):
        api = replace(api, pidfile=data_dir / "switchd.pid")
    if api.token is None and not is_loopback(api.listen.host):
        raise ConfigError(source.where, "api.token", source.lines.line_of(("api", "listen")),
                          f"required: api.listen {api.listen} is not a loopback address (every request "
                          "will then need 'Authorization: Bearer <token>')")
    timers: TimersConfig = built["timers"]
    if timers.t2 < timers.t1:
        raise source.error(("timers", "t2"), f"must be >= t1 ({timers.t1:g}), not {timers.t2:g}")
    registrar: RegistrarConfig = built["registrar"]
    if not registrar.min_expires <= registrar.default_expires <= registrar.max_expires:
        raise source.error(("registrar",), f"expected min_expires <= default_expires <= max_expires, got "
                                           f"{registrar.min_expires}, {registrar.default_expires}, "
                                           f"{registrar.max_expires}")

    sip: SipConfig = built["sip"]
    return Config(
        path=path, node=top.node, workers=top.workers, data_dir=data_dir, sip=sip, api=api,
        database=database, billing=billing, timers=timers, limits=built["limits"], auth=built["auth"],
        acl=built["acl"], registrar=registrar, routing=_routing(source, raw, udp=bool(sip.listen_udp)),
    )


def _sqlite_relative_to(url: str, source: _Source, key: KeyPath) -> str:
    if "://" not in url:
        raise source.error(key, f"{url!r} is not a database URL (e.g. sqlite:///data/switchd.sqlite3)")
    scheme, _, rest = url.partition(":///")
    if scheme.split("+")[0] == "sqlite" and rest and rest != ":memory:" and not rest.startswith("/"):
        return f"{scheme}:///{source.path(rest)}"
    return url


def _routing(source: _Source, raw: dict[str, Any], *, udp: bool) -> RoutingConfig:
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
        gateways, routes = _routing_data(source, raw, udp=udp)
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
    gateways, routes = _routing_data(sub, sub.raw, udp=udp)
    return RoutingConfig(policy=policy, routes_file=path, gateways=gateways, table=routes)


def _routing_data(source: _Source, raw: Mapping[str, Any], *,
                  udp: bool | None = None) -> tuple[tuple[Gateway, ...], RouteTable]:
    """The gateways and routes of `raw`. `udp` says whether the node listens on UDP: a gateway on UDP
    without it is refused (None: not known, as on a reload, where such a gateway's calls go over TCP)."""
    gateways: dict[str, Gateway] = {}
    for i, entry in enumerate(source.array(raw.get("gateways", []), ("gateways",))):
        key: KeyPath = ("gateways", i)
        table = source.table(entry, key)
        source.only(table, key, {"name", "address", "rate_plan", "transport", "tcp_fallback", "registration"})
        name = _required(source, table, key, "name", str, NAME)
        if name in gateways:
            raise source.error((*key, "name"), f"duplicate gateway name {name!r}")
        address = _address(source, _required(source, table, key, "address", str), (*key, "address"))
        rate_plan = _optional(source, table, key, "rate_plan", str, NAME)
        transport = _optional(source, table, key, "transport", str, _TRANSPORT) or "tcp"
        if transport == "udp" and udp is False:
            raise source.error((*key, "transport"), 'a gateway on "udp" needs sip.listen_udp: the address its '
                                                    "calls are sent from")
        tcp_fallback = _optional(source, table, key, "tcp_fallback", bool)
        registration = _registration(source, table, key) if "registration" in table else None
        gateways[name] = Gateway(name=name, host=address.host, port=address.port, rate_plan=rate_plan,
                                 transport=Transport(transport), tcp_fallback=True if tcp_fallback is None else tcp_fallback,
                                 registration=registration)

    routes: list[Route] = []
    first_of_id: dict[str, int] = {}
    for i, entry in enumerate(source.array(raw.get("routes", []), ("routes",))):
        key = ("routes", i)
        table = source.table(entry, key)
        source.only(table, key, {"id", "prefix", "strip", "prepend", "gateways"})
        prefix = _required(source, table, key, "prefix", str, matches(DIGITS, "a number prefix (0-9 + * #)"))
        route_id = _optional(source, table, key, "id", str, NAME) or prefix or "default"
        if route_id in first_of_id:
            raise source.error((*key, "id") if "id" in table else key,
                               f"duplicate route id {route_id!r} (also routes[{first_of_id[route_id]}]);"
                               " give each route with the same prefix its own id")
        first_of_id[route_id] = i
        strip = _optional(source, table, key, "strip", int, at_least(0)) or 0
        prepend = _optional(source, table, key, "prepend", str, matches(DIGITS, "digits (0-9 + * #)")) or ""
        targets = _targets(source, table, key, gateways)
        routes.append(Route(id=route_id, prefix=prefix, targets=targets, strip=strip, prepend=prepend))
    return tuple(gateways.values()), RouteTable(routes)


def _password(value: str) -> str | None:
    """A password: not empty, no control characters. The refusal never repeats the value."""
    return None if re.fullmatch(r"[^\x00-\x1f\x7f]+", value) else "must be non-empty, without control characters"


_PASSWORD: Check = _password


def _registration(source: _Source, gateway: Mapping[str, Any], key: KeyPath) -> TrunkRegistration:
    """A gateway's `registration = {username, password, expires, domain}`: switchd registers with it."""
    at: KeyPath = (*key, "registration")
    table = source.table(gateway["registration"], at)
    source.only(table, at, {"username", "password", "expires", "domain"})
    username = _required(source, table, at, "username", str, matches(USER, "a SIP user name"))
    password = _required(source, table, at, "password", str, _PASSWORD)
    expires = _optional(source, table, at, "expires", int, at_least(60))
    domain = _optional(source, table, at, "domain", str, HOST)
    return TrunkRegistration(username=username, password=password, expires=3600 if expires is None else expires,
                             domain=domain)
_TRANSPORT = matches("tcp|udp", 'a transport: "tcp" or "udp"')


def _targets(source: _Source, route: Mapping[str, Any], key: KeyPath,
             gateways: Mapping[str, Gateway]) -> tuple[Target, ...]:
    """A route's `gateways`: names, or tables {name, priority, weight}; priority defaults to position."""
    entries = source.array(_required(source, route, key, "gateways", list), (*key, "gateways"))
    if not entries:
        raise source.error((*key, "gateways"), "a route needs at least one gateway")
    targets: list[Target] = []
    for j, entry in enumerate(entries):
        at: KeyPath = (*key, "gateways", j)
        priority, weight = j + 1, 1
        if isinstance(entry, str):
            name, name_key = entry, at
        elif isinstance(entry, dict):
            source.only(entry, at, {"name", "priority", "weight"})
            name, name_key = _required(source, entry, at, "name", str), (*at, "name")
            given = _optional(source, entry, at, "priority", int, at_least(0))
            priority = priority if given is None else given
            given = _optional(source, entry, at, "weight", int, at_least(0))
            weight = weight if given is None else given
        else:
            raise source.error(at, f"expected a gateway name or a table {{name, priority, weight}}, "
                                   f"got {_toml_type(entry)}")
        if name not in gateways:
            known = ", ".join(sorted(gateways)) or "none defined"
            raise source.error(name_key, f"unknown gateway {name!r} (gateways: {known})")
        targets.append(Target(gateway=gateways[name], priority=priority, weight=weight))
    return tuple(targets)


def _required(source: _Source, table: Mapping[str, Any], key: KeyPath, name: str, kind: type[_T],
              check: Check | None = None) -> _T:
    if name not in table:
        raise source.error(key, f"missing key {name!r}")
    value = _optional(source, table, key, name, kind, check)
    assert value is not None
    return value


def _optional(source: _Source, table: Mapping[str, Any], key: KeyPath, name: str, kind: type[_T],
              check: Check | None = None) -> _T | None:
    if name not in table:
        return None
    value = _convert(kind, table[name], (*key, name), source)
    if check is not None and (problem := check(value)) is not None:
        raise source.error((*key, name), problem)
    return typing.cast(_T, value)


def _section(cls: type[_T], raw: object, key: KeyPath, source: _Source,
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
            if not by_name[name].repr:  # a secret: the error names the key, never the value
                problem = problem.replace(repr(converted), "the value given")
            raise source.error((*key, name), problem)
        values[name] = converted
    return cls(**values)


def _convert(hint: Any, value: object, key: KeyPath, source: _Source) -> Any:
    if isinstance(hint, types.UnionType):  # `X | None`: TOML has no null, so only X can appear
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint == tuple[Address, ...]:  # one address, or an array of them
        items = value if isinstance(value, list) else [value]
        return tuple(_convert(Address, item, (*key, i) if isinstance(value, list) else key, source)
                     for i, item in enumerate(items))
    if typing.get_origin(hint) is tuple:  # `tuple[X, ...]`: a TOML array of X
        if not isinstance(value, list):
            raise source.error(key, f"expected an array, got {_toml_type(value)} {value!r}")
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, element, (*key, i), source) for i, element in enumerate(value))
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


def _address(source: _Source, text: str, key: KeyPath) -> Address:
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
