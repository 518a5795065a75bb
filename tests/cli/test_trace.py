"""`switchd trace`: the ladder of a call with caller, switchd and gateway lanes; --full, --follow, --json."""

from __future__ import annotations

import json

import pytest

from switchd.cli import main
from switchd.cli._trace import LANE

from ._fake_api import FakeApi, Reply
from ._samples import TRACE


def _arrows(out: str) -> list[tuple[str, str, str]]:
    """(time, lane, label) of each arrow line: lane 'a>' caller→switchd, 'a<', 'b>' switchd→gateway, 'b<'."""
    found = []
    for line in out.splitlines():
        if "──" not in line:
            continue
        time, _, lanes = line.strip().partition(" ")
        lanes = lanes.strip()
        a_lane, b_lane = lanes[1:LANE], lanes[LANE + 1:2 * LANE]
        lane, body = ("a", a_lane) if "──" in a_lane else ("b", b_lane)
        direction = ">" if body.endswith("▶") else "<"
        found.append((time, lane + direction, body.strip("◀▶─")))
    return found


def test_trace_draws_each_message_between_the_two_parties_it_went_between_with_times(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.on("GET", "/trace/c0@host", Reply(TRACE))
    assert main(["trace", "c0@host", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "Call-ID c0@host" in out and "first message 06:35:46.798 UTC" in out
    assert "caller 127.0.0.1:40000" in out and "switchd" in out and "gateway 127.0.0.1:5070" in out
    assert _arrows(out) == [
        ("+0.000s", "a>", "INVITE sip:14155550100@127.0…"),
        ("+0.001s", "a<", "100 Trying"),
        ("+0.003s", "b>", "INVITE sip:14155550100@127.0…"),
        ("+0.005s", "b<", "180 Ringing"),
        ("+0.006s", "a<", "180 Ringing"),
        ("+1.007s", "b<", "200 OK"),
        ("+1.008s", "a<", "200 OK"),
        ("+1.012s", "a>", "ACK"),
        ("+1.013s", "b>", "ACK"),
        ("+3.014s", "a>", "BYE"),
        ("+3.015s", "b>", "BYE"),
        ("+3.017s", "b<", "200 OK (BYE)"),
    ]
    assert "12 messages" in out
    assert "CSeq" not in out


def test_every_arrow_spans_exactly_one_lane(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/trace/c0@host", Reply(TRACE))
    assert main(["trace", "c0@host", "--api", api.url]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "──" in line]
    assert len({len(line.rstrip()) for line in lines}) == 1  # the gateway lifeline is one column for all
    assert all(line.rstrip().endswith("│") for line in lines)


def test_full_prints_each_message_text_under_its_arrow(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/trace/c0@host", Reply(TRACE))
    assert main(["trace", "c0@host", "--full", "--api", api.url]) == 0
    out = capsys.readouterr().out.splitlines()
    invite = next(i for i, line in enumerate(out) if "INVITE sip:14155550100@127.0…" in line)
    assert out[invite + 1].strip() == "INVITE sip:14155550100@127.0.0.1:5060 SIP/2.0"
    assert out[invite + 2].strip() == "Via: SIP/2.0/TCP 127.0.0.1:40000"
    assert out[invite + 3].strip() == "CSeq: 1 INVITE"


def test_trace_json_is_the_api_answer(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/trace/c0@host", Reply(TRACE))
    assert main(["trace", "c0@host", "--json", "--api", api.url]) == 0
    assert json.loads(capsys.readouterr().out) == TRACE


def test_a_call_the_switch_no_longer_keeps_is_one_line_exit_1(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    detail = "no trace of call 'old@h': the switch keeps the last 1000 calls ([api] trace_calls)"
    api.on("GET", "/trace/old@h", Reply({"error": {"code": "not_found", "detail": detail}}, 404))
    assert main(["trace", "old@h", "--api", api.url]) == 1
    assert capsys.readouterr().err.strip() == f"switchd: {detail}"


def test_a_message_with_odd_fields_still_gets_a_line(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/trace/x", Reply({"call_id": "x", "messages": [{"summary": "X" * 200, "at": "yesterday"}, 3]}))
    assert main(["trace", "x", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert "?" in out and "X…" in out and "1 message" in out


def test_a_summary_with_line_breaks_stays_on_its_line(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    odd = {**TRACE["messages"][0], "summary": "INVITE\r\nX-Evil: 1", "peer": "a\nb"}
    api.on("GET", "/trace/x", Reply({"call_id": "x", "messages": [odd]}))
    assert main(["trace", "x", "--api", api.url]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 4 and "INVITE  X-Evil: 1" in out and "caller a b" in out


def test_trace_without_a_call_id_needs_follow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace"]) == 2
    assert "give a CALL-ID" in capsys.readouterr().err


def test_follow_prints_what_was_kept_then_what_the_stream_brings_each_message_once(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = {"call_id": "c0@host", "messages": TRACE["messages"][:3]}
    live = TRACE["messages"][2:]  # the stream repeats the third: it happened while both were read
    api.on("GET", "/trace/c0@host", lambda request: Reply(lines=live) if request.query.get("follow") else Reply(kept))
    assert main(["trace", "c0@host", "--follow", "--api", api.url]) == 0
    arrows = _arrows(capsys.readouterr().out)
    assert [a[2] for a in arrows][:4] == ["INVITE sip:14155550100@127.0…", "100 Trying",
                                          "INVITE sip:14155550100@127.0…", "180 Ringing"]
    assert len(arrows) == 12 and arrows[-1][0] == "+3.017s"
    assert [r.query for r in api.requests] == [{"follow": "1"}, {}]  # the stream opened first


def test_follow_of_a_call_not_yet_started_waits_for_the_stream(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = Reply({"error": {"code": "not_found", "detail": "no trace"}}, 404)
    api.on("GET", "/trace/c0@host",
           lambda request: Reply(lines=TRACE["messages"][:2]) if request.query.get("follow") else missing)
    assert main(["trace", "c0@host", "-f", "--api", api.url]) == 0
    assert len(_arrows(capsys.readouterr().out)) == 2


def test_follow_of_every_call_shows_which_call_each_message_is_of(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    first = {**TRACE["messages"][0], "call_id": "one@h"}
    second = {**TRACE["messages"][0], "call_id": "two@h", "at": "2026-12-02T06:35:50.000Z"}
    api.on("GET", "/trace/*", Reply(lines=[first, second, {**TRACE["messages"][1], "call_id": "one@h"}]))
    assert main(["trace", "--follow", "--api", api.url]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "──" in line]
    assert [line.split()[:2] for line in lines] == [["one@h", "+0.000s"], ["two@h", "+0.000s"],
                                                    ["one@h", "+0.001s"]]
    assert api.paths() == ["GET /trace/*"]


def test_follow_json_prints_ndjson_lines(api: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    api.on("GET", "/trace/*", Reply(lines=TRACE["messages"][:3]))
    assert main(["trace", "-f", "--json", "--api", api.url]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == TRACE["messages"][:3]
