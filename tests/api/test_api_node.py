"""The API of a running node over real sockets: calls placed through it, then read, ended, billed, traced."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio

from switchd.sim import CallResult, Outcome
from switchd.switch import CallAnswered, CallEnded, CallProgress

from ._node import ANSWERS, BUSY, CALLER, RINGS, Node, running_node


async def _call(node: Node, callee: str, results: list[CallResult], **options: Any) -> None:
    results.append(await node.uac.call(CALLER, callee, timeout=20.0, **options))


def _path(call_id: str) -> str:
    return quote(call_id, safe="")


async def test_health_status_and_tree_describe_the_running_node(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        health = await node.get("/health")
        status = await node.get("/status")
        tree = await node.get("/tree")
    assert health.status == 200 and health.json()["status"] == "ok" and health.json()["node"] == "api-test"
    body = status.json()
    assert body["calls"]["active"] == 0 and body["draining"] is False
    assert body["billing"]["store_up"] and body["billing"]["connected"] and body["billing"]["queue_depth"] == 0
    assert {"events", "billing", "router", "calls", "api"} <= set(body["restarts"])
    [root, *_] = tree.json()["processes"]
    assert root["name"] == "switchd" and root["kind"] == "supervisor"
    assert [c["child_id"] for c in root["children"]] == ["events", "billing", "router", "location", "calls",
                                                        "collector", "sip", "registrations", "reloader", "api"]
    api = root["children"][-1]
    assert [c["name"] for c in api["children"]] == ["api.db", "api.handlers", "api.connections", "api.listener"]
    assert api["children"][2]["children"][0]["kind"] == "process"  # this very request's connection


async def test_a_ringing_call_is_listed_shown_and_ended_by_the_operator_with_a_cdr_that_says_so(
    tmp_path: Path,
) -> None:
    results: list[CallResult] = []
    async with running_node(tmp_path) as node, trio.open_nursery() as nursery:
        nursery.start_soon(_call, node, RINGS, results)
        await node.events.wait_for(lambda e: bool(e.of(CallProgress)))
        listing = (await node.get("/calls")).json()
        [call] = listing["calls"]
        shown = (await node.get(f"/calls/{_path(call['call_id'])}")).json()
        ended = await node.request("DELETE", f"/calls/{_path(call['call_id'])}")
        await node.events.wait_for(lambda e: bool(e.of(CallEnded)))
        unknown = await node.request("DELETE", "/calls/nobody%40nowhere")
    [result] = results
    assert listing["count"] == 1 and call["state"] == "ringing" and call["callee"] == RINGS
    assert call["gateway"] == "sim" and call["answered_at"] is None and call["started_at"].endswith("Z")
    assert [(leg["gateway"], leg["state"]) for leg in shown["legs"]] == [("sim", "ringing")]
    assert ended.status == 202 and ended.json() == {"call_id": call["call_id"], "ending": True}
    assert (result.outcome, result.final_status) == (Outcome.REJECTED, 487)
    assert unknown.status == 404


async def test_an_answered_call_ended_by_the_operator_gets_bye_and_is_billed_as_ended_by_the_operator(
    tmp_path: Path,
) -> None:
    results: list[CallResult] = []
    async with running_node(tmp_path) as node:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(_call, node, ANSWERS, results, hold=30.0))
            await node.events.wait_for(lambda e: bool(e.of(CallAnswered)))
            [answered] = node.events.of(CallAnswered)
            await node.until_state(answered.call_id, "answered")  # the caller's ACK is in: billable
            assert (await node.request("DELETE", f"/calls/{_path(answered.call_id)}")).status == 202
        cdrs = (await node.get(f"/cdrs/{_path(answered.call_id)}")).json()["cdrs"]
    [result] = results
    assert result.answered and result.hangup_by == "callee"  # the BYE came from the switch's side
    [cdr] = cdrs
    assert (cdr["disposition"], cdr["hangup_by"], cdr["hangup_cause"]) == ("ANSWERED", "operator", "operator")


async def test_cdrs_are_listed_newest_first_in_keyset_pages_and_filtered_and_summarised(tmp_path: Path) -> None:
    results: list[CallResult] = []
    async with running_node(tmp_path) as node:
        for callee in (ANSWERS, BUSY, ANSWERS, BUSY, ANSWERS):
            await _call(node, callee, results)  # the caller's final answer waits for the durable close
        pages, cursor = [], ""
        while cursor is not None:
            page = (await node.get(f"/cdrs?limit=2{'&cursor=' + cursor if cursor else ''}")).json()
            pages.append([c["call_id"] for c in page["cdrs"]])
            cursor = page["next"]
        oldest = (await node.get("/cdrs?order=oldest&limit=1000")).json()["cdrs"]
        busy = (await node.get("/cdrs?disposition=BUSY")).json()["cdrs"]
        one = (await node.get(f"/cdrs?call_id={quote(results[0].call_id)}&gateway=sim")).json()["cdrs"]
        by_disposition = (await node.get("/billing/summary?by=disposition")).json()
        by_gateway = (await node.get("/billing/summary?by=gateway")).json()
        bad_cursor = await node.get("/cdrs?cursor=not-a-cursor")
        too_many = await node.get("/cdrs?limit=1001")
        bad_status = await node.get("/cdrs?status=lost")
        missing = await node.get("/cdrs/nobody%40nowhere")
    placed = [r.call_id for r in results]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c for p in pages for c in p] == list(reversed(placed))
    assert [c["call_id"] for c in oldest] == placed
    assert {c["call_id"] for c in busy} == {placed[1], placed[3]}
    assert all(c["sip_code"] == 486 and c["status"] == "closed" for c in busy)
    assert [c["call_id"] for c in one] == [placed[0]]
    rows = {r["key"]: r for r in by_disposition["rows"]}
    assert (rows["ANSWERED"]["calls"], rows["BUSY"]["calls"], rows["BUSY"]["asr"]) == (3, 2, 0.0)
    assert rows["ANSWERED"]["currency"] == "USD" and re.fullmatch(r"\d+\.\d{6}", rows["ANSWERED"]["cost"])
    # one row per gateway and currency: the busy calls were not rated
    assert [(r["key"], r["currency"], r["calls"], r["answered"]) for r in by_gateway["rows"]] == [
        ("sim", None, 2, 0), ("sim", "USD", 3, 3)]
    assert bad_cursor.status == too_many.status == bad_status.status == 400
    assert missing.status == 404


async def test_routes_reload_rates_upload_and_the_policy_swap(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        routes = (await node.get("/routes")).json()
        reloaded = await node.request("POST", "/routes/reload")
        csv = await node.request("POST", "/rates?plan=carrier&currency=EUR", headers=[("Content-Type", "text/csv")],
                                 body=b"prefix,price_per_minute\n1,0.004\n44,0.01\n")
        xml = await node.request("POST", "/rates", headers=[("Content-Type", "application/xml")], body=(
            b'<rate-plan name="xml-plan" currency="GBP"><rate prefix="44" price_per_minute="0.02"/></rate-plan>'))
        broken = await node.request("POST", "/rates", headers=[("Content-Type", "text/csv")],
                                    body=b"prefix,price_per_minute\n1,free\n")
        other = await node.request("POST", "/rates", headers=[("Content-Type", "text/plain")], body=b"1,0.1")
        swapped = await node.post("/policy", {"name": "least_cost"})
        after = (await node.get("/routes")).json()
        unknown = await node.post("/policy", {"name": "cheapest"})
        results: list[CallResult] = []
        await _call(node, ANSWERS, results)  # the swapped Router still routes
    assert routes["policy"] == "priority_weight" and routes["reloads"] == 0
    [route] = routes["routes"]
    assert route["prefix"] == "" and [g["name"] for g in route["gateways"]] == ["sim"]
    assert route["gateways"][0]["address"].startswith("127.0.0.1:")
    assert reloaded.status == 200 and reloaded.json()["ok"] and reloaded.json()["routes"] == 1
    assert csv.status == 200 and csv.json() == {"plan": "carrier", "currency": "EUR", "tariffs": 2}
    assert xml.status == 200 and xml.json()["plan"] == "xml-plan" and xml.json()["tariffs"] == 1
    assert broken.status == 422 and "POST /rates:2" in broken.json()["error"]["detail"]
    assert other.status == 415
    assert swapped.json() == {"policy": "least_cost", "previous": "priority_weight"}
    assert after["policy"] == "least_cost" and after["reloads"] == 1
    assert unknown.status == 422 and "cheapest" in unknown.json()["error"]["detail"]
    assert results[0].answered


async def test_with_a_token_every_request_but_health_needs_it(tmp_path: Path) -> None:
    token = "tok-0123456789abcdef"
    async with running_node(tmp_path, token=token) as node, node.client() as client:
        health = await client.get("/health")
        refused = await client.get("/status")
        allowed = await client.get("/status", token=token)
    assert (health.status, refused.status, allowed.status) == (200, 401, 200)
