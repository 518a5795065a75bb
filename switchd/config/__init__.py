"""switchd's configuration: a TOML file → tomllib → frozen dataclasses, validated at load.

`switchd run` reads `config/switchd.toml` (see `default_config_path()`); `config/switchd.toml` in the
repository is the shipped default with every key documented. The layout:

    node, data_dir                       top-level keys
    [sip] [api] [database] [billing]     one table per component; each component is handed its
    [timers] [limits] [auth] [acl]       own section (`Router(cfg.routing)`), there is no global
    [registrar] [routing]
    [[gateways]] [[routes]]              inline, or in the TOML file `routing.routes_file` names

Rules a reader of an error message can rely on:

* Every problem is a `ConfigError` whose message is `FILE:LINE: KEY: what is wrong`, KEY dotted as
  a user would point at it (`sip.lisen`, `routes[2].gateways[0]`). tomllib reports no positions
  for keys, so `_lines.LineIndex` scans the text (tables, arrays of tables, dotted keys, inline tables
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

from ._load import default_config_path, load, load_routes, loads, reload_routes
from ._model import (
    AclConfig,
    Address,
    ApiConfig,
    AuthConfig,
    BillingConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    LimitsConfig,
    RegistrarConfig,
    RoutingConfig,
    SipConfig,
    TimersConfig,
)

__all__ = [  # sorted
    "AclConfig",
    "Address",
    "ApiConfig",
    "AuthConfig",
    "BillingConfig",
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "LimitsConfig",
    "RegistrarConfig",
    "RoutingConfig",
    "SipConfig",
    "TimersConfig",
    "default_config_path",
    "load",
    "load_routes",
    "loads",
    "reload_routes",
]
