"""`switchd chaos`: the kill, the restarts it waits for, and the CDR check, against the fake API."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from switchd.cli import main

from ._fake_api import FakeApi, Reply, Request
from ._samples import CALLS, TREE


def _tree_with(name: str, pid: str, restarts: int) -> dict[str, Any]:
    tree = copy.deepcopy(TREE)
    for process in tree["processes"][0]["children"]:
        if process["name"] == name:
            process["pid"], process["restarts"] = pid, restarts
    return tree


def _cdr(call_id: str, status: str = "open") -> Reply:
    return Reply({"cdrs": [{"call_id": call_id, "status": status, "disposition": None}]})


def _sequence(*replies: Reply) -> Any:
    """A route answering each reply in turn, then the last one for ever."""
    left = list(replies)

    def answer(request: Request) -> Reply:
        return left.pop(0) if len(left) > 1 else left[0]

    return answer


def test_killing_the_router_shows_its_restart_and_finds_every_cdr(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    api.on("POST", "/chaos", Reply({"killed": [{"name": "router", "pid": "<0.4.0>"}]}))
    api.on("GET", "/tree", _sequence(Reply(TREE), Reply(_tree_with("router", "<0.90.0>", 2))))
    api.on("GET", "/cdrs/c0@host", _cdr("c0@host"))
    api.on("GET", "/cdrs/c1@host", _cdr("c1@host"))
    assert main(["chaos", "--kill", "router", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "router" in out and "restarted as <0.90.0> (restarts 2)" in out
    assert "calls in progress at the kill: 2; with their CDR: 2" in out and "no CDR missing" in out
    requests = api.paths()
    assert requests[:2] == ["GET /calls", "POST /chaos"]  # the calls are noted before the kill
    assert api.requests[1].json() == {"kill": "router", "count": 1}
    assert requests.count("GET /tree") == 2


def test_a_killed_call_must_have_its_cdr_closed(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    api.on("POST", "/chaos", Reply({"killed": [{"name": "call:c0@host", "pid": "<0.40.0>"}]}))
    api.on("GET", "/cdrs/c0@host", _sequence(_cdr("c0@host"), _cdr("c0@host"), _cdr("c0@host", "closed")))
    api.on("GET", "/cdrs/c1@host", _cdr("c1@host"))
    assert main(["chaos", "--kill", "call", "--count", "1", "--api", api.url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["killed"][0]["call_id"] == "c0@host"
    assert report["calls"] == 2 and report["missing"] == [] and report["open"] == []
    assert api.paths().count("GET /cdrs/c0@host") == 3  # asked until it closed
    assert "GET /tree" not in api.paths()  # a call session is not restarted: nothing to wait for


def test_a_killed_call_started_after_the_listing_is_found_by_its_registered_name(
        api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    api.on("POST", "/chaos", Reply({"killed": [{"name": "call:a:c9@host", "pid": "<0.99.0>"}]}))
    for call_id in ("c0@host", "c1@host", "c9@host"):
        api.on("GET", f"/cdrs/{call_id}", _cdr(call_id, "closed"))
    assert main(["chaos", "--kill", "call", "--count", "1", "--api", api.url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["killed"][0]["call_id"] == "c9@host" and report["missing"] == []
    assert "GET /cdrs/c9@host" in api.paths()


def test_a_missing_cdr_fails_naming_the_call(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    api.on("POST", "/chaos", Reply({"killed": [{"name": "billing", "pid": "<0.3.0>"}]}))
    api.on("GET", "/tree", Reply(_tree_with("billing", "<0.91.0>", 1)))
    api.on("GET", "/cdrs/c0@host", _cdr("c0@host"))
    # c1@host: 404 for ever
    assert main(["chaos", "--kill", "billing", "--wait", "0.5", "--api", api.url]) == 1
    captured = capsys.readouterr()
    assert "with their CDR: 1" in captured.out
    assert captured.err.strip() == "switchd: no CDR for 1 call(s): c1@host"


def test_a_server_that_does_not_come_back_fails(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/calls", Reply({"calls": []}))
    api.on("POST", "/chaos", Reply({"killed": [{"name": "events", "pid": "<0.2.0>"}]}))
    api.on("GET", "/tree", Reply(TREE))  # still the old pid
    assert main(["chaos", "--kill", "events", "--wait", "0.3", "--api", api.url]) == 1
    captured = capsys.readouterr()
    assert "not back" in captured.out and "place calls first" in captured.out
    assert "not restarted within the wait: events" in captured.err


def test_chaos_off_on_the_node_is_one_line_saying_how_to_turn_it_on(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    api.on("POST", "/chaos", Reply({"error": {"code": "forbidden", "detail": "chaos is disabled"}}, 403))
    assert main(["chaos", "--kill", "router", "--api", api.url]) == 2
    assert "set [api] chaos = true" in capsys.readouterr().err


def test_an_unknown_target_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "--kill", "sip"]) == 2
    assert "invalid choice: 'sip'" in capsys.readouterr().err
