"""The configuration: TOML → frozen dataclasses; every refusal names file, line and dotted key."""

from __future__ import annotations

import json
import re
import textwrap
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchd import config
from switchd.config import Address, Config, ConfigError, load, load_routes, loads, reload_routes
from switchd.config._lines import LineIndex
from switchd.sip import DEFAULT_LIMITS, Connection
from switchd.switch import ConnectionSettings, Gateway, RouteTable

REPO = Path(__file__).resolve().parent.parent


def refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        loads(textwrap.dedent(text), where="test.toml")
    return info.value


def assert_refused(text: str, *, line: int, key: str, reason: str) -> None:
    error = refused(text)
    assert (error.path, error.line, error.key) == ("test.toml", line, key)
    assert re.search(reason, error.reason), error.reason
    assert str(error) == f"test.toml:{line}: {key}: {error.reason}"


GATEWAYS = """\
[[gateways]]
name = "a"
address = "127.0.0.1:5071"

[[gateways]]
name = "b"
address = "127.0.0.1:5072"
"""


# --- what a good file gives -----------------------------------------------------------------------


def test_an_empty_file_gives_every_default_with_data_under_the_base_directory(tmp_path: Path) -> None:
    cfg = loads("", base_dir=tmp_path)
    assert cfg.node == "switchd"
    assert cfg.sip.listen == Address("127.0.0.1", 5060) and str(cfg.sip.listen) == "127.0.0.1:5060"
    assert cfg.sip.max_message_size == 65_535
    assert cfg.api.listen == Address("127.0.0.1", 8080)
    assert cfg.data_dir == tmp_path.resolve() / "data"
    assert cfg.database.url == f"sqlite:///{tmp_path.resolve()}/data/switchd.sqlite3"
    assert cfg.billing.spool == tmp_path.resolve() / "data" / "cdr-spool"
    assert cfg.api.pidfile == tmp_path.resolve() / "data" / "switchd.pid"
    assert cfg.api.token is None
    assert (cfg.timers.t1, cfg.timers.t2, cfg.timers.t4) == (0.5, 4.0, 5.0)
    assert (cfg.timers.no_answer, cfg.timers.max_call_duration, cfg.timers.drain_timeout) == (60, 3600, 30)
    assert cfg.limits.max_calls == 1000
    assert cfg.routing.policy == "priority_weight"
    assert cfg.routing.table == RouteTable() and cfg.routing.gateways == ()


def test_the_shipped_default_loads_and_keeps_every_documented_default() -> None:
    cfg = load(REPO / "config" / "switchd.toml")
    defaults = Config()
    for section in ("sip", "timers", "limits", "auth", "registrar"):
        assert getattr(cfg, section) == getattr(defaults, section), section
    assert cfg.api == replace(defaults.api, pidfile=REPO / "data" / "switchd.pid")
    assert cfg.data_dir == REPO / "data"  # the repository's .gitignore keeps /data/ out of git
    assert cfg.billing.rate_deck == REPO / "config" / "rates.csv"
    assert cfg.billing == replace(defaults.billing, rate_deck=cfg.billing.rate_deck, spool=REPO / "data" / "cdr-spool")
    assert cfg.database.url == f"sqlite:///{REPO}/data/switchd.sqlite3"
    assert [c.gateway.name for c in cfg.routing.table.candidates("15551234")] == ["local-sim", "local-sim-backup"]


@pytest.mark.parametrize("name", ["switchd.toml", "routes.toml"])
def test_every_key_in_a_shipped_file_is_documented_by_a_comment_above_it(name: str) -> None:
    lines = (REPO / "config" / name).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"[A-Za-z_]+ = ", line) and not lines[number - 1].startswith(("#", "[")):
            # a key may follow another key of the same block when the block's comment covers both
            block = lines[:number]
            while block and re.match(r"[A-Za-z_]+ = |\s", block[-1]):
                block.pop()
            assert block and block[-1].startswith(("#", "[")), f"{name}:{number + 1}: {line}"


def test_the_sample_routes_file_loads() -> None:
    table = load_routes(REPO / "config" / "routes.toml")
    uk = table.candidates("00441612345678")
    assert {(c.route_id, c.number) for c in uk} == {("uk-00", "441612345678")}
    assert [c.number for c in table.candidates("01612345678")] == ["+441612345678"]
    assert [(c.gateway.name, c.priority) for c in table.candidates("331234")] == [("carrier-a", 1), ("carrier-b", 2)]


def test_gateways_and_routes_become_the_routing_table() -> None:
    cfg = loads(GATEWAYS + textwrap.dedent("""
        [[gateways]]
        name = "c"
        address = "[::1]:5073"
        rate_plan = "premium"

        [[routes]]
        prefix = "44"
        strip = 2
        prepend = "0"
        gateways = ["a", { name = "b", weight = 0 }, { name = "c", priority = 0, weight = 5 }]
    """), where="test.toml")
    assert cfg.routing.gateways[2] == Gateway(name="c", host="::1", port=5073, rate_plan="premium")
    (route,) = cfg.routing.table.routes
    assert (route.id, route.prefix, route.strip, route.prepend) == ("44", "44", 2, "0")
    assert [(t.gateway.name, t.priority, t.weight) for t in route.targets] == [("a", 1, 1), ("b", 2, 0), ("c", 0, 5)]


def test_timers_accept_integers_and_become_floats() -> None:
    cfg = loads("[timers]\nno_answer = 20\nt1 = 1\nt2 = 8\n")
    assert cfg.timers.no_answer == 20.0 and isinstance(cfg.timers.no_answer, float)


def test_relative_paths_are_relative_to_the_config_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "switchd.toml").write_text(textwrap.dedent("""
        data_dir = "var"
        [database]
        url = "sqlite:///db/cdr.sqlite3"
        [api]
        pidfile = "run/switchd.pid"
        [billing]
        rate_deck = "rates.xml"
    """))
    monkeypatch.chdir(tmp_path)
    cfg = load(Path("etc/switchd.toml"))
    etc = tmp_path.resolve() / "etc"
    assert cfg.data_dir == etc / "var"
    assert cfg.billing.spool == etc / "var" / "cdr-spool"
    assert cfg.billing.rate_deck == etc / "rates.xml"
    assert cfg.api.pidfile == etc / "run" / "switchd.pid"
    assert cfg.database.url == f"sqlite:///{etc}/db/cdr.sqlite3"
    assert cfg.path == Path("etc/switchd.toml")


def test_the_api_token_is_read_but_never_shown_in_the_configuration_repr() -> None:
    cfg = loads('[api]\ntoken = "s3cret-token-0123456789"\n')
    assert cfg.api.token == "s3cret-token-0123456789"
    assert "s3cret" not in repr(cfg) and "s3cret" not in repr(cfg.api)


def test_a_bad_api_token_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        loads('[api]\ntoken = "s3cret"\n')
    assert "api.token" in str(caught.value) and "s3cret" not in str(caught.value)


def test_absolute_sqlite_and_server_database_urls_are_kept_as_written() -> None:
    assert loads('[database]\nurl = "sqlite:////var/lib/s.db"').database.url == "sqlite:////var/lib/s.db"
    url = "postgresql+psycopg://switchd@db/switchd"
    assert loads(f'[database]\nurl = "{url}"').database.url == url


def test_the_default_config_path_is_config_switchd_toml_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.default_config_path() == tmp_path / "config" / "switchd.toml"


# --- every kind of refusal names file, line and key ---------------------------------------------


def test_a_toml_syntax_error_keeps_the_line_and_column_tomllib_gives() -> None:
    error = refused("node = 'x'\n[sip]\nlisten = 127.0.0.1:5060\n")
    assert error.line == 3
    assert str(error).startswith("test.toml:3: TOML syntax error: ")
    assert "line 3, column 15" in str(error)


def test_an_unknown_key_in_a_section_is_refused_with_a_suggestion() -> None:
    assert_refused("node = 'a'\n\n[sip]\nmax_vias = 3\nlisen = '1.2.3.4:5'\n",
                   line=5, key="sip.lisen", reason="unknown key; did you mean 'listen'")


def test_an_unknown_top_level_key_or_section_is_refused_listing_the_known_ones() -> None:
    assert_refused("node = 'a'\n\n[frobnicate]\nx = 1\n", line=3, key="frobnicate",
                   reason="unknown key; expected one of: acl, api, auth, billing, data_dir, database, gateways, ")


def test_an_unknown_key_in_a_dotted_key_is_found_on_its_line() -> None:
    assert_refused("node = 'a'\ntimers.t1 = 1\ntimers.t9 = 2\n", line=3, key="timers.t9",
                   reason="unknown key")


def test_an_unknown_key_in_the_third_array_table_names_its_index_and_line() -> None:
    text = GATEWAYS + '\n[[routes]]\nprefix = "1"\ngateways = ["a"]\n\n[[routes]]\nprefix = "2"\n' \
        'gateways = ["a"]\n\n[[routes]]\nid = "x"\nprefx = "3"\ngateways = ["b"]\n'
    assert_refused(text, line=19, key="routes[2].prefx", reason="did you mean 'prefix'")


def test_an_unknown_key_inside_an_inline_table_on_a_continuation_line_is_found() -> None:
    text = GATEWAYS + '[[routes]]\nprefix = "1"\ngateways = [\n  { name = "a" },\n  { name = "b", wieght = 2 },\n]\n'
    assert_refused(text, line=12, key="routes[0].gateways[1].wieght", reason="did you mean 'weight'")


def test_a_wrong_type_names_what_was_expected_and_what_was_found() -> None:
    assert_refused("[sip]\nmax_message_size = '64k'\n", line=2, key="sip.max_message_size",
                   reason=r"expected an integer, got string '64k'")


def test_a_boolean_is_not_a_number() -> None:
    assert_refused("[timers]\nt1 = true\n", line=2, key="timers.t1",
                   reason="expected a number, got boolean True")


def test_a_section_that_is_not_a_table_is_refused() -> None:
    assert_refused("node = 'n'\nsip = 5\n", line=2, key="sip", reason="expected a table, got integer")


def test_an_unparseable_listen_address_is_refused() -> None:
    assert_refused("[api]\n\nlisten = 'localhost'\n", line=3, key="api.listen", reason="'localhost' is not host:port")


def test_a_port_out_of_range_is_refused() -> None:
    assert_refused("[sip]\nlisten = '127.0.0.1:70000'\n", line=2, key="sip.listen",
                   reason=r"port 70000 in '127.0.0.1:70000' is not in 1..65535")


def test_a_negative_timer_is_refused() -> None:
    assert_refused("[timers]\nt1 = 0.5\nno_answer = -1\n", line=3, key="timers.no_answer",
                   reason=r"must be > 0, not -1.0")


def test_t2_below_t1_is_refused_at_t2() -> None:
    assert_refused("[timers]\nt2 = 0.25\nt1 = 0.5\n", line=2, key="timers.t2", reason=r"must be >= t1 \(0.5\)")


def test_a_zero_call_limit_is_refused() -> None:
    assert_refused("[limits]\nmax_calls = 0\n", line=2, key="limits.max_calls", reason="must be >= 1, not 0")


def test_connection_and_overload_limits_have_their_documented_defaults() -> None:
    cfg = loads("")
    sip, limits = cfg.sip, cfg.limits
    assert (sip.message_timeout, sip.idle_timeout, sip.max_connections, sip.max_connections_per_ip) == (
        10.0, 60.0, 0, 0)
    assert (limits.cps, limits.burst, limits.per_ip_cps, limits.per_ip_burst) == (200.0, 200, 0.0, 20)


def test_the_framing_limits_have_one_set_of_defaults_from_the_sip_layer() -> None:
    sip = loads("").sip
    configured = (sip.max_message_size, sip.max_headers, sip.max_line_length, sip.max_vias)
    settings_ = ConnectionSettings()
    framed = Connection().limits
    assert configured == (65_535, 100, 8_192, 70)
    assert configured == (settings_.max_message_size, settings_.max_headers, settings_.max_line_length,
                          settings_.max_vias)
    assert framed == settings_.framer().limits == DEFAULT_LIMITS
    assert configured == (framed.max_message_size, framed.max_headers, framed.max_line_length, framed.max_vias)


def test_connection_and_overload_limits_are_read_and_integers_become_seconds() -> None:
    cfg = loads("[sip]\nmessage_timeout = 5\nidle_timeout = 120\nmax_connections = 2000\n"
                "max_connections_per_ip = 50\n[limits]\ncps = 75.5\nburst = 10\nper_ip_cps = 2\nper_ip_burst = 4\n")
    assert (cfg.sip.message_timeout, cfg.sip.idle_timeout) == (5.0, 120.0)
    assert isinstance(cfg.sip.message_timeout, float)
    assert (cfg.sip.max_connections, cfg.sip.max_connections_per_ip) == (2000, 50)
    assert (cfg.limits.cps, cfg.limits.burst, cfg.limits.per_ip_cps, cfg.limits.per_ip_burst) == (75.5, 10, 2.0, 4)


@pytest.mark.parametrize(("text", "line", "key", "reason"), [
    ("[sip]\nmessage_timeout = 0\n", 2, "sip.message_timeout", "must be > 0, not 0.0"),
    ("[sip]\nidle_timeout = -1\n", 2, "sip.idle_timeout", "must be > 0"),
    ("[sip]\nmax_connections = -5\n", 2, "sip.max_connections", "must be >= 0, not -5"),
    ("[limits]\ncps = -1\n", 2, "limits.cps", "must be >= 0"),
    ("[limits]\nburst = 0\n", 2, "limits.burst", "must be >= 1, not 0"),
    ("[limits]\nper_ip_burst = 1.5\n", 2, "limits.per_ip_burst", "expected an integer"),
])
def test_a_bad_connection_or_overload_limit_is_refused(text: str, line: int, key: str, reason: str) -> None:
    assert_refused(text, line=line, key=key, reason=reason)


def test_a_bad_node_name_or_country_code_is_refused() -> None:
    assert_refused("node = 'my node'\n", line=1, key="node", reason="is not a name")
    assert_refused("[billing]\ncountry_code = '+44'\n", line=2, key="billing.country_code",
                   reason="is not a country calling code")


def test_a_route_naming_an_unknown_gateway_is_refused_at_that_gateway() -> None:
    text = GATEWAYS + '\n'.join(f'[[routes]]\nprefix = "{p}"\ngateways = ["a"]' for p in "12") \
        + '\n[[routes]]\nprefix = "3"\ngateways = ["zz", "a"]\n'
    assert_refused(text, line=16, key="routes[2].gateways[0]", reason=r"unknown gateway 'zz' \(gateways: a, b\)")


def test_an_unknown_gateway_in_an_array_of_tables_under_a_route_is_found_at_its_header() -> None:
    text = GATEWAYS + textwrap.dedent("""
        [[routes]]
        prefix = "1"
        gateways = ["a"]

        [[routes]]
        prefix = "2"

        [[routes.gateways]]
        name = "a"

        [[routes.gateways]]
        priority = 2
        name = "nope"
    """)
    assert_refused(text, line=21, key="routes[1].gateways[1].name", reason="unknown gateway 'nope'")


def test_a_missing_required_key_is_reported_at_its_table() -> None:
    assert_refused("[[gateways]]\nname = 'a'\naddress = '1.2.3.4:5'\n\n[[gateways]]\nname = 'b'\n",
                   line=5, key="gateways[1]", reason="missing key 'address'")


def test_duplicate_gateway_names_are_refused_at_the_second() -> None:
    assert_refused(GATEWAYS + "\n[[gateways]]\nname = 'a'\naddress = '1.2.3.4:5'\n",
                   line=10, key="gateways[2].name", reason="duplicate gateway name 'a'")


def test_two_routes_with_one_prefix_need_their_own_ids() -> None:
    text = GATEWAYS + '[[routes]]\nprefix = "1"\ngateways = ["a"]\n[[routes]]\nprefix = "1"\ngateways = ["b"]\n'
    assert_refused(text, line=11, key="routes[1]", reason=r"duplicate route id '1' \(also routes\[0\]\)")
    ok = GATEWAYS + '[[routes]]\nprefix = "1"\ngateways = ["a"]\n[[routes]]\nid = "1b"\nprefix = "1"\ngateways = ["b"]\n'
    assert len(loads(ok).routing.table.match("1")) == 2


def test_a_route_without_gateways_or_with_bad_digits_is_refused() -> None:
    assert_refused(GATEWAYS + '[[routes]]\nprefix = "1"\ngateways = []\n', line=10, key="routes[0].gateways",
                   reason="at least one gateway")
    assert_refused(GATEWAYS + '[[routes]]\nprefix = "1x"\ngateways = ["a"]\n', line=9, key="routes[0].prefix",
                   reason="'1x' is not a number prefix")
    assert_refused(GATEWAYS + '[[routes]]\nprefix = "1"\nstrip = -2\ngateways = ["a"]\n', line=10,
                   key="routes[0].strip", reason="must be >= 0, not -2")


def test_an_unknown_routing_policy_is_refused_naming_the_known_ones() -> None:
    assert_refused("[routing]\npolicy = 'cheapest'\n", line=2, key="routing.policy",
                   reason="unknown routing policy 'cheapest'; known: least_cost, priority_weight")


def test_keys_inside_strings_and_comments_do_not_confuse_the_line_finder() -> None:
    text = textwrap.dedent('''\
        node = "n"  # [sip] listen = "x"
        [billing]
        default_rate_plan = """
        [[routes]]
        listen = 1
        """
        "country_code" = "44"
        [ sip ]
        'max_vias' = 3
        listen = "a:b"
    ''')
    assert_refused(text, line=10, key="sip.listen", reason="'a:b' is not host:port")


def test_an_unreadable_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path / 'nope.toml'))}: cannot read: No such file"):
        load(tmp_path / "nope.toml")


# --- routes in their own file, and reloading them -------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_routes_can_live_in_their_own_file_named_relative_to_the_config(tmp_path: Path) -> None:
    write(tmp_path / "routes.toml", GATEWAYS + '[[routes]]\nprefix = "4"\ngateways = ["b"]\n')
    cfg = load(write(tmp_path / "switchd.toml", '[routing]\npolicy = "least_cost"\nroutes_file = "routes.toml"\n'))
    assert cfg.routing.routes_file == tmp_path.resolve() / "routes.toml"
    assert cfg.routing.policy == "least_cost"
    assert [c.gateway.name for c in cfg.routing.table.candidates("41")] == ["b"]


def test_an_error_in_the_routes_file_names_that_file_and_its_line(tmp_path: Path) -> None:
    write(tmp_path / "routes.toml", GATEWAYS + '[[routes]]\nprefix = "4"\ngateways = ["c"]\n')
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path / "switchd.toml", '[routing]\nroutes_file = "routes.toml"\n'))
    assert str(info.value).startswith(f"{tmp_path.resolve() / 'routes.toml'}:10: routes[0].gateways[0]: unknown")


def test_a_missing_routes_file_is_refused_at_the_key_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"switchd.toml:3: routing.routes_file: no such file: "):
        load(write(tmp_path / "switchd.toml", '[routing]\n\nroutes_file = "gone.toml"\n'))


def test_routes_inline_and_in_a_routes_file_at_once_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "routes.toml", GATEWAYS)
    text = '[routing]\nroutes_file = "routes.toml"\n\n' + GATEWAYS
    with pytest.raises(ConfigError, match=r"switchd.toml:4: gateways: routing.routes_file \(line 2\) is set"):
        load(write(tmp_path / "switchd.toml", text))


def test_a_routes_file_holds_only_gateways_and_routes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routes.toml:1: sip: unknown key"):
        load_routes(write(tmp_path / "routes.toml", "[sip]\nlisten = '1.2.3.4:5'\n"))


def test_reloading_routes_reads_the_routes_file_again(tmp_path: Path) -> None:
    routes = write(tmp_path / "routes.toml", GATEWAYS + '[[routes]]\nprefix = "4"\ngateways = ["a"]\n')
    cfg = load(write(tmp_path / "switchd.toml", '[routing]\nroutes_file = "routes.toml"\n'))
    write(routes, GATEWAYS + '[[routes]]\nprefix = "4"\ngateways = ["b"]\n')
    assert [c.gateway.name for c in reload_routes(cfg).candidates("4")] == ["b"]


def test_reloading_inline_routes_reads_the_config_file_again(tmp_path: Path) -> None:
    path = write(tmp_path / "switchd.toml", GATEWAYS + '[[routes]]\nprefix = "4"\ngateways = ["a"]\n')
    cfg = load(path)
    write(path, GATEWAYS + '[[routes]]\nprefix = "5"\ngateways = ["a"]\n')
    assert reload_routes(cfg).candidates("4") == []


def test_a_reload_of_an_invalid_routes_file_raises_and_returns_nothing(tmp_path: Path) -> None:
    routes = write(tmp_path / "routes.toml", GATEWAYS + '[[routes]]\nprefix = "4"\ngateways = ["a"]\n')
    cfg = load(write(tmp_path / "switchd.toml", '[routing]\nroutes_file = "routes.toml"\n'))
    write(routes, GATEWAYS + '[[routes]]\nprefix = "4"\ngateways = ["a"\n')
    with pytest.raises(ConfigError, match=r"routes.toml:10: TOML syntax error: Unclosed array"):
        reload_routes(cfg)
    assert [c.gateway.name for c in cfg.routing.table.candidates("4")] == ["a"]


def test_a_config_from_a_string_has_nothing_to_reload() -> None:
    with pytest.raises(ConfigError, match="not loaded from a file"):
        reload_routes(loads(""))


# --- the line finder, as a property --------------------------------------------------------------

_NAMES = st.lists(st.sampled_from(["a", "b-c", "d_e", "quoted key", "x.y", "7"]), unique=True, max_size=4)
_STRINGS = st.one_of(  # TOML's own delimiters are what would lead a line finder astray
    st.sampled_from(['"', '\\"', "\\", "'", "'''", '"""', "# x = 1", "[[a]]", "{ }"]),
    st.text(st.one_of(st.sampled_from('"\\#[]={},.\'\n\t'), st.characters(blacklist_categories=("Cs", "Cc"))),
            max_size=12),
)


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[tuple[str | int, ...], int]]:
    """A TOML text written in many styles, and the line each key and element is written on."""
    lines: list[str] = []
    expected: dict[tuple[str | int, ...], int] = {}

    def keys(prefix: tuple[str | int, ...]) -> None:
        for name in draw(_NAMES):
            path = (*prefix, name)
            expected[path] = len(lines) + 1
            kind = draw(st.sampled_from(["int", "str", "multiline", "array"]))
            if kind == "int":
                lines.append(f"{_key(name)} = {draw(st.integers())}  # = [x]")
            elif kind == "str":
                lines.append(f"{_key(name)} = {json.dumps(draw(_STRINGS), ensure_ascii=False)}")
            elif kind == "multiline":
                lines.extend([f'{_key(name)} = """', "[[not.a.table]]", 'k = "v" """'])
            else:
                lines.append(f"{_key(name)} = [")
                for i in range(draw(st.integers(0, 3))):
                    expected[(*path, i)] = len(lines) + 1
                    expected[(*path, i, "n")] = len(lines) + 1
                    lines.append(f"  {{ n = {i}, s = '[' }},  # ]")
                lines.append("]")

    keys(())
    for section in draw(st.lists(st.sampled_from(["s1", "s.2"]), unique=True, max_size=2)):
        expected[(section,)] = len(lines) + 1
        lines.append(f"[ {_key(section)} ]")
        keys((section,))
    for index in range(draw(st.integers(0, 3))):
        expected[("arr", index)] = len(lines) + 1
        lines.append("[[arr]]")
        keys(("arr", index))
        for sub in range(draw(st.integers(0, 2))):
            expected[("arr", index, "sub", sub)] = len(lines) + 1
            lines.append("[[arr.sub]]")
            keys(("arr", index, "sub", sub))
    return "\n".join(lines) + "\n", expected


@settings(max_examples=300)
@given(documents())
def test_the_line_finder_finds_the_line_of_every_key_and_element(doc: tuple[str, dict[tuple[str | int, ...], int]]) -> None:
    text, expected = doc
    tomllib.loads(text)  # the generator writes valid TOML
    index = LineIndex(text)
    assert {path: index.line_of(path) for path in expected} == expected


# --- who may call: [auth], [acl], [registrar], gateway registration ----------------------------------


def test_auth_acl_and_registrar_have_safe_defaults() -> None:
    cfg = loads("")
    assert (cfg.auth.enabled, cfg.auth.realm, cfg.auth.nonce_ttl) == (None, "switchd", 300.0)
    assert (cfg.acl.trusted, cfg.acl.deny, cfg.acl.contact_allow, cfg.acl.contact_deny) == ((), (), (), ())
    assert (cfg.registrar.enabled, cfg.registrar.domains) == (True, ())
    assert (cfg.registrar.min_expires, cfg.registrar.default_expires, cfg.registrar.max_expires) == (60, 3600, 3600)
    assert (cfg.limits.register_per_ip_rate, cfg.limits.register_per_ip_burst) == (10.0, 50)


def test_acl_networks_and_registrar_domains_are_lists() -> None:
    cfg = loads(textwrap.dedent("""
        [acl]
        trusted = ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]
        contact_deny = ["10.0.0.0/8"]
        [registrar]
        domains = ["pbx.example.net", "192.0.2.10", "[2001:db8::1]"]
        min_expires = 30
    """))
    assert cfg.acl.trusted == ("192.0.2.0/24", "2001:db8::/32", "198.51.100.7")
    assert cfg.acl.contact_deny == ("10.0.0.0/8",)
    assert cfg.registrar.domains == ("pbx.example.net", "192.0.2.10", "[2001:db8::1]")
    assert cfg.registrar.min_expires == 30


def test_a_bad_network_is_refused_with_its_index() -> None:
    assert_refused("""
        [acl]
        deny = ["192.0.2.0/24",
                "not-a-network"]
    """, line=3, key="acl.deny", reason=r"\[1\]: 'not-a-network' is not an IP network")
    assert_refused("""
        [acl]
        trusted = "192.0.2.0/24"
    """, line=3, key="acl.trusted", reason="expected an array")


def test_registration_intervals_must_be_ordered() -> None:
    assert_refused("""
        [registrar]
        min_expires = 600
        default_expires = 300
    """, line=2, key="registrar", reason="min_expires <= default_expires <= max_expires")


def test_a_gateway_may_ask_switchd_to_register_and_its_password_is_never_shown() -> None:
    cfg = loads(textwrap.dedent("""
        [[gateways]]
        name = "trunk"
        address = "192.0.2.50:5060"
        registration = { username = "4420790001", password = "s3cr#t pass", expires = 600 }

        [[routes]]
        prefix = ""
        gateways = ["trunk"]
    """))
    registration = cfg.routing.gateways[0].registration
    assert registration is not None
    assert (registration.username, registration.password, registration.expires, registration.domain) == (
        "4420790001", "s3cr#t pass", 600, None)
    assert "s3cr#t" not in repr(cfg.routing.gateways[0]) and "s3cr#t" not in repr(cfg)


def test_a_bad_registration_is_refused_without_repeating_the_password() -> None:
    error = refused("""
        [[gateways]]
        name = "trunk"
        address = "192.0.2.50:5060"
        registration = { username = "u", password = "bad\\u0007pass" }
    """)
    assert error.key == "gateways[0].registration.password" and "bad" not in str(error)
    assert_refused("""
        [[gateways]]
        name = "trunk"
        address = "192.0.2.50:5060"
        registration = { username = "u", password = "p", expires = 10 }
    """, line=5, key="gateways[0].registration.expires", reason="must be >= 60")
    assert_refused("""
        [[gateways]]
        name = "trunk"
        address = "192.0.2.50:5060"
        registration = { user = "u", password = "p" }
    """, line=5, key="gateways[0].registration.user", reason="did you mean 'username'")


def test_the_domain_served_and_the_digest_algorithms_offered_are_sip_keys() -> None:
    default = loads("")
    assert (default.sip.domain, default.sip.digest_algorithms) == (None, ("SHA-256", "MD5"))
    cfg = loads(textwrap.dedent("""
        [sip]
        domain = "pbx.example.net"
        digest_algorithms = ["MD5"]
    """))
    assert (cfg.sip.domain, cfg.sip.digest_algorithms) == ("pbx.example.net", ("MD5",))


@pytest.mark.parametrize(("value", "reason"), [
    ("[]", "must name at least one of SHA-256, MD5"),
    ('["SHA-512-256"]', "'SHA-512-256' is not a digest algorithm switchd speaks"),
    ('["MD5", "MD5"]', "names an algorithm twice"),
    ('"MD5"', "expected an array"),
])
def test_digest_algorithms_must_be_ones_switchd_speaks_each_once(value: str, reason: str) -> None:
    assert_refused(f"""
        [sip]
        digest_algorithms = {value}
    """, line=3, key="sip.digest_algorithms", reason=reason)


def test_a_domain_must_be_a_host() -> None:
    assert_refused("""
        [sip]
        domain = "pbx example"
    """, line=3, key="sip.domain", reason="is not a host name or IP address")


@pytest.mark.parametrize(("text", "challenged"), [
    ("", False),  # a plain trunking node: no phones, nobody named as trusted
    ('[sip]\ndomain = "pbx.test"\n', True),  # it serves phones
    ('[acl]\ntrusted = ["192.0.2.0/24"]\n', True),  # it knows whom it trusts: everybody else authenticates
    ('[sip]\ndomain = "pbx.test"\n[auth]\nenabled = false\n', False),
    ("[auth]\nenabled = true\n", True),
])
def test_new_calls_are_challenged_once_the_node_serves_a_domain_or_trusts_a_network(text: str,
                                                                                     challenged: bool) -> None:
    assert loads(text).challenges_calls() is challenged


def test_the_loop_lag_limit_is_off_by_default_and_read_in_seconds() -> None:
    default = loads("")
    assert (default.limits.max_loop_lag, default.limits.loop_lag_interval) == (0.0, 0.01)
    assert default.admission().loop_lag is None
    cfg = loads("[limits]\nmax_loop_lag = 0.05\nloop_lag_interval = 0.02\n")
    assert (cfg.limits.max_loop_lag, cfg.limits.loop_lag_interval) == (0.05, 0.02)
    admission = cfg.admission()
    assert admission.loop_lag is not None and admission.max_loop_lag == 0.05
    assert_refused("[limits]\nmax_loop_lag = -0.1\n", line=2, key="limits.max_loop_lag", reason="must be >= 0")
    assert_refused("[limits]\n\nloop_lag_interval = 0\n", line=3, key="limits.loop_lag_interval",
                   reason="must be > 0")
