"""`switchd routes show|reload`, `rates load FILE`, `policy upgrade NAME` against the fake API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchd.cli import main

from ._fake_api import FakeApi, Reply

ROUTES = {
    "policy": "priority_weight", "reloads": 2,
    "routes": [
        {"id": "uk", "prefix": "44", "strip": 2, "prepend": "0", "gateways": [
            {"name": "carrier-a", "address": "10.0.0.1:5060", "transport": "tcp", "priority": 1, "weight": 3},
            {"name": "carrier-b", "address": "10.0.0.2:5060", "transport": "udp", "priority": 2, "weight": 1},
        ]},
        {"id": "default", "prefix": "", "strip": 0, "prepend": "", "gateways": [
            {"name": "local-sim", "address": "127.0.0.1:5070", "transport": "tcp", "priority": 1, "weight": 1},
        ]},
    ],
}


def test_routes_shows_each_route_with_its_gateways_and_the_policy(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("GET", "/routes", Reply(ROUTES))
    assert main(["routes", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "carrier-a 10.0.0.1:5060/tcp (1/3)" in out and "carrier-b 10.0.0.2:5060/udp (2/1)" in out
    assert "(any)" in out and "local-sim" in out
    assert "policy priority_weight; 2 routes; reloaded 2 times since start" in out


def test_routes_show_json(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/routes", Reply(ROUTES))
    assert main(["routes", "show", "--json", "--api", api.url]) == 0
    assert json.loads(capsys.readouterr().out) == ROUTES


def test_routes_reload_says_what_it_loaded(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", "/routes/reload", Reply({"ok": True, "routes": 2, "rates": 120, "gateways": ["carrier-c started"]}))
    assert main(["routes", "reload", "--api", api.url]) == 0
    assert capsys.readouterr().out.strip() == "reloaded: 2 routes, 120 tariffs; gateway carrier-c started"
    assert api.paths() == ["POST /routes/reload"]


def test_a_refused_reload_is_one_line_with_the_reason_exit_2(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    detail = "routes.toml:3: routes[0].gateways[0]: unknown gateway 'x'"
    api.on("POST", "/routes/reload", Reply({"error": {"code": "bad_request", "detail": detail}}, 422))
    assert main(["routes", "reload", "--api", api.url]) == 2
    assert capsys.readouterr().err.strip() == f"switchd: {detail}"


def test_rates_load_uploads_a_csv_deck_with_its_plan_and_currency(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deck = tmp_path / "gold.csv"
    deck.write_bytes(b"prefix,price_per_minute\n44,0.02\n")
    api.on("POST", "/rates", Reply({"plan": "gold", "tariffs": 1}))
    assert main(["rates", "load", str(deck), "--plan", "gold", "--currency", "EUR", "--api", api.url]) == 0
    (request,) = api.requests
    assert request.body == deck.read_bytes() and request.headers["content-type"] == "text/csv"
    assert request.query == {"plan": "gold", "currency": "EUR"}
    assert "rate plan gold: 1 tariffs loaded" in capsys.readouterr().out


def test_rates_load_sends_an_xml_deck_as_xml(api: FakeApi, tmp_path: Path) -> None:
    deck = tmp_path / "deck.XML"
    deck.write_text("<rates/>")
    api.on("POST", "/rates", Reply({"plan": "p", "tariffs": 0}))
    assert main(["rates", "load", str(deck), "--api", api.url]) == 0
    assert api.requests[0].headers["content-type"] == "application/xml" and api.requests[0].query == {}


@pytest.mark.parametrize(("name", "extra", "message"), [
    ("deck.txt", [], "a deck is FILE.csv or FILE.xml"),
    ("deck.xml", ["--plan", "x"], "an XML deck names its own"),
    ("missing.csv", [], "cannot read"),
])
def test_a_deck_the_cli_can_refuse_never_reaches_the_daemon(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, extra: list[str], message: str
) -> None:
    if name != "missing.csv":
        (tmp_path / name).write_text("x")
    assert main(["rates", "load", str(tmp_path / name), *extra, "--api", api.url]) == 2
    assert message in capsys.readouterr().err
    assert api.requests == []


def test_a_bad_deck_is_refused_by_the_daemon_with_its_reason(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deck = tmp_path / "bad.csv"
    deck.write_text("nonsense\n")
    api.on("POST", "/rates", Reply({"error": {"code": "bad_request", "detail": "bad.csv:1: no prefix column"}}, 422))
    assert main(["rates", "load", str(deck), "--api", api.url]) == 2
    assert capsys.readouterr().err.strip() == "switchd: bad.csv:1: no prefix column"


def test_policy_upgrade_swaps_the_policy(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("POST", "/policy", Reply({"policy": "least_cost", "previous": "priority_weight"}))
    assert main(["policy", "upgrade", "least_cost", "--api", api.url]) == 0
    assert api.requests[0].json() == {"name": "least_cost"}
    assert "routing policy priority_weight → least_cost" in capsys.readouterr().out


def test_an_unknown_policy_is_one_line_exit_2(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    detail = "unknown routing policy 'cheapest'; known: least_cost, priority_weight"
    api.on("POST", "/policy", Reply({"error": {"code": "bad_request", "detail": detail}}, 422))
    assert main(["policy", "upgrade", "cheapest", "--api", api.url]) == 2
    assert capsys.readouterr().err.strip() == f"switchd: {detail}"


@pytest.mark.parametrize("command", ["policy", "rates"])
def test_a_command_without_its_action_is_a_usage_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command]) == 2
    assert "an ACTION is missing" in capsys.readouterr().err
