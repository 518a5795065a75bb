"""Watching a running node through its API: the SIP trace, Prometheus metrics, and chaos."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio
from prometheus_client.parser import text_string_to_metric_families

from switchd.sim import CallResult
from switchd.switch import CallAnswered, CallEnded, CallProgress, listening_on

from ._client import connect
from ._node import ANSWERS, BUSY, CALLER, RINGS, Node, running_node


async def _call(node: Node, callee: str, results: list[CallResult], hold: float = 0.0) -> None:
    results.append(await node.uac.call(CALLER, callee, hold=hold, timeout=20.0))


async def _follow(node: Node, call_id: str) -> list[dict[str, Any]]:
    """GET /trace/{call_id}?follow=1 until the server ends the stream; the messages."""
    async with connect(*node.api) as client:
        await client.send_request("GET", f"/trace/{quote(call_id, safe='')}?follow=1")
        status, headers = await client.read_head()
        assert (status, headers["content-type"]) == (200, "application/x-ndjson")
        body = b"".join([chunk async for chunk in client.chunks()])
    return [json.loads(line) for line in body.splitlines()]


def _ladder(messages: list[dict[str, Any]], leg: str) -> list[str]:
    return [f"{m['direction']} {m['summary'].split(' sip:')[0]}" for m in messages
            if m["leg"] == leg and not m["summary"].startswith("100 ")]


async def test_the_trace_shows_the_whole_ladder_of_a_call_on_both_legs(tmp_path: Path) -> None:
    results: list[CallResult] = []
    async with running_node(tmp_path) as node:
        await _call(node, ANSWERS, results, hold=0.1)
        [result] = results
        followed = await _follow(node, result.call_id)  # kept, then the rest until the session exits
        kept = (await node.get(f"/trace/{quote(result.call_id, safe='')}")).json()
        unknown = await node.get("/trace/nobody%40nowhere")
    assert _ladder(followed, "a") == ["in INVITE", "out 180 Ringing", "out 200 OK", "in ACK", "in BYE", "out 200 OK"]
    assert _ladder(followed, "b") == ["out INVITE", "in 180 Ringing", "in 200 OK", "out ACK", "out BYE", "in 200 OK"]
    assert kept["call_id"] == result.call_id and kept["messages"] == followed
    first = followed[0]
    assert first["text"].startswith("INVITE sip:") and first["transport"] == "tcp"
    assert first["peer"].startswith("127.0.0.1:") and first["at"].endswith("Z")
    assert {m["call_id"] for m in followed} == {result.call_id}
    assert unknown.status == 404


async def test_following_a_live_call_streams_until_its_session_has_exited(tmp_path: Path) -> None:
    results: list[CallResult] = []
    async with running_node(tmp_path) as node, trio.open_nursery() as nursery:
        nursery.start_soon(_call, node, RINGS, results)
        await node.events.wait_for(lambda e: bool(e.of(CallProgress)))
        [ringing] = node.events.of(CallProgress)
        async with connect(*node.api) as client:
            await client.send_request("GET", f"/trace/{quote(ringing.call_id, safe='')}?follow=1")
            assert (await client.read_head())[0] == 200
            await node.request("DELETE", f"/calls/{quote(ringing.call_id, safe='')}")
            body = b"".join([chunk async for chunk in client.chunks()])  # ends with the session
    followed = [json.loads(line) for line in body.splitlines()]
    # (the caller's ACK to the 487 may come after the session exited: GET /trace has it then)
    assert _ladder(followed, "a")[:3] == ["in INVITE", "out 180 Ringing", "out 487 Request Terminated"]
    assert _ladder(followed, "b")[:5] == ["out INVITE", "in 180 Ringing", "out CANCEL", "in 200 OK",
                                          "in 487 Request Terminated"]


async def test_following_every_call_streams_the_messages_of_calls_placed_meanwhile(tmp_path: Path) -> None:
    results: list[CallResult] = []
    async with running_node(tmp_path) as node, connect(*node.api) as client:
        await client.send_request("GET", "/trace/*?follow=1")
        assert (await client.read_head())[0] == 200
        lines: list[dict[str, Any]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_call, node, BUSY, results)
            buffered = b""
            async for chunk in client.chunks():
                buffered += chunk
                *complete, buffered = buffered.split(b"\n")
                lines += [json.loads(line) for line in complete]
                if any(m["summary"].startswith("486") and m["leg"] == "a" for m in lines):
                    break
    assert {m["call_id"] for m in lines} == {results[0].call_id}
    assert _ladder(lines, "a")[:1] == ["in INVITE"]


async def test_metrics_count_calls_sip_messages_and_read_the_node_at_scrape_time(tmp_path: Path) -> None:
    results: list[CallResult] = []
    async with running_node(tmp_path) as node:
        for callee in (ANSWERS, ANSWERS, BUSY):
            await _call(node, callee, results)
        await node.events.wait_for(lambda e: len(e.of(CallEnded)) == 3)
        [(host, port)] = await listening_on()
        garbage = await trio.open_tcp_stream(host, port)
        await garbage.send_all(b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4;branch=z9hG4bKx\r\n"
                               b"Call-ID: c\r\nCSeq: 1 INVITE\r\nCSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n")
        assert b"400" in await garbage.receive_some(1000)
        await garbage.aclose()
        scraped = await node.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(scraped.body.decode()) for s in family.samples}

    def value(metric: str, **labels: str) -> float:
        return samples[(metric, tuple(sorted(labels.items())))]

    assert value("switchd_call_attempts_total") == 3
    assert value("switchd_calls_total", disposition="ANSWERED") == 2
    assert value("switchd_calls_total", disposition="BUSY") == 1
    assert value("switchd_call_setup_seconds_count") == 2
    assert value("switchd_call_setup_seconds_bucket", le="+Inf") == 2
    assert value("switchd_calls_active") == 0
    assert value("switchd_sip_requests_total", direction="out", method="INVITE") == 3  # the B-legs
    assert value("switchd_sip_requests_total", direction="in", method="INVITE") == 3  # the A-legs
    assert value("switchd_sip_responses_total", direction="in", code="486") == 1  # the gateway's busy
    assert value("switchd_sip_responses_total", direction="out", code="486") == 1  # relayed to the caller
    assert value("switchd_sip_parse_errors_total", status="400") == 1
    assert value("switchd_rejections_total", cause="sip_400") == 1
    assert value("switchd_process_restarts_total", name="router") == 0
    assert value("switchd_mailbox_depth", name="billing") >= 0
    assert value("switchd_billing_db_up") == 1 and value("switchd_billing_store_up") == 1
    assert value("switchd_cdr_queue_depth") == 0 and value("switchd_cdr_writes_total") >= 6
    [info] = [dict(labels) for (name, labels) in samples if name == "switchd_info"]
    assert info["node"] == "api-test" and info["version"]


async def test_chaos_is_refused_unless_the_configuration_allows_it(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        refused = await node.post("/chaos", {"kill": "router"})
    assert refused.status == 403 and refused.error == "forbidden"


async def test_chaos_under_calls_kills_servers_and_calls_and_loses_no_cdr(tmp_path: Path) -> None:
    results: list[CallResult] = []
    async with running_node(tmp_path, chaos=True) as node:
        router = (await node.post("/chaos", {"kill": "router"})).json()["killed"]
        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(partial(_call, node, ANSWERS, results, hold=5.0))
            await node.events.wait_for(lambda e: len(e.of(CallAnswered)) == 6)
            for answered in node.events.of(CallAnswered):  # each caller's ACK is in: a killed call is billable
                await node.until_state(answered.call_id, "answered")
            calls = (await node.post("/chaos", {"kill": "call", "count": 2})).json()["killed"]
            billing = (await node.post("/chaos", {"kill": "billing"})).json()["killed"]
            events = (await node.post("/chaos", {"kill": "events"})).json()["killed"]
            bad = await node.post("/chaos", {"kill": "router", "count": 4})
        status = (await node.get("/status")).json()
        after: list[CallResult] = []
        await _call(node, BUSY, after)  # the new "events" has the API's handlers again
        traced = await node.get(f"/trace/{quote(after[0].call_id, safe='')}")
        cdrs = (await node.get("/cdrs?limit=1000")).json()["cdrs"]
    assert router[0]["name"] == "router" and router[0]["restarted_as"] not in (None, router[0]["pid"])
    assert len(calls) == 2 and all(k["name"].startswith("call:a:") for k in calls)
    assert billing[0]["name"] == "billing" and events[0]["name"] == "events"
    assert bad.status == 400
    assert (status["restarts"]["router"], status["restarts"]["billing"], status["restarts"]["events"]) == (1, 1, 1)
    assert traced.status == 200 and traced.json()["messages"]
    # every call placed has its CDR, closed; the two killed ones were hung up by the switch
    placed = {r.call_id for r in [*results, *after]}
    assert {c["call_id"] for c in cdrs} == placed and len(cdrs) == len(placed) == 7
    assert all(c["status"] == "closed" for c in cdrs)
    crashed = [c for c in cdrs if c["hangup_cause"] == "crash"]
    assert {c["call_id"] for c in crashed} == {k["name"].removeprefix("call:a:") for k in calls}
    assert all(c["hangup_by"] == "switch" and c["disposition"] == "ANSWERED" for c in crashed)
