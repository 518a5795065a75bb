"""`switchd calls`: list, show, hangup against the fake API."""

from __future__ import annotations

import json

import pytest

from switchd.cli import main

from ._fake_api import FakeApi, Reply
from ._samples import CALLS

NOT_FOUND = Reply({"error": {"code": "not_found", "detail": "no call 'gone@h' in progress"}}, 404)


def test_calls_lists_the_calls_in_progress(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    assert main(["calls", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "c0@host" in out and "answered" in out and "local-sim" in out and "06:35:46.798" in out
    assert "c1@host" in out and "ringing" in out and "2.2s" in out
    assert "2 calls in progress" in out
    assert api.requests[0].query == {"limit": "100"}


@pytest.mark.parametrize("argv", [
    ["calls", "list", "--limit", "2", "--json"],
    ["calls", "--limit", "2", "--json", "list"],
    ["calls", "--json", "--limit", "2"],
])
def test_options_of_the_listing_work_before_or_after_list(
    api: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    assert main([*argv, "--api", api.url]) == 0
    assert json.loads(capsys.readouterr().out) == CALLS
    assert api.requests[0].query == {"limit": "2"}


def test_the_api_option_works_before_the_subcommand_too(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    assert main(["calls", "--api", api.url, "list"]) == 0
    assert "2 calls in progress" in capsys.readouterr().out


def test_a_full_listing_says_more_may_be_in_progress(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/calls", Reply(CALLS))
    assert main(["calls", "--limit", "2", "--api", api.url]) == 0
    assert "raise --limit" in capsys.readouterr().out


def test_calls_show_prints_the_call_and_its_legs(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    legs = [{"leg": "a", "state": "confirmed", "peer": "127.0.0.1:40000"},
            {"leg": "b", "state": "confirmed", "peer": "127.0.0.1:5070", "gateway": "local-sim"}]
    api.on("GET", "/calls/c0@host", Reply({**CALLS["calls"][0], "legs": legs}))
    assert main(["calls", "show", "c0@host", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "+14155550199" in out and "1m 01s" in out and "2026-12-02T06:35:47.801Z" in out
    assert "legs" in out and "127.0.0.1:5070" in out and "confirmed" in out


def test_calls_show_json_is_the_api_answer(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/calls/c0@host", Reply(CALLS["calls"][0]))
    assert main(["calls", "show", "--json", "c0@host", "--api", api.url]) == 0
    assert json.loads(capsys.readouterr().out) == CALLS["calls"][0]


def test_a_call_id_with_slashes_reaches_the_api_whole(api: FakeApi) -> None:
    api.on("DELETE", "/calls/a/b c@h", Reply({"call_id": "a/b c@h", "ending": True}, 202))
    assert main(["calls", "hangup", "a/b c@h", "--api", api.url]) == 0
    assert api.paths() == ["DELETE /calls/a/b c@h"]


def test_hangup_asks_the_daemon_to_end_the_call(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("DELETE", "/calls/c0@host", Reply({"call_id": "c0@host", "ending": True}, 202))
    assert main(["calls", "hangup", "c0@host", "--api", api.url]) == 0
    assert "ending call c0@host: BYE to both legs" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["calls", "show", "gone@h"], ["calls", "hangup", "gone@h"]])
def test_an_unknown_call_is_one_red_line_exit_1(
    api: FakeApi, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    api.on("GET", "/calls/gone@h", NOT_FOUND)
    api.on("DELETE", "/calls/gone@h", NOT_FOUND)
    assert main([*argv, "--api", api.url]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "switchd: no call 'gone@h' in progress"


def test_show_without_a_call_id_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calls", "show"]) == 2
    assert "CALL-ID" in capsys.readouterr().err
