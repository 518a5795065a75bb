"""Endpoints about the node itself: GET /health, /status, /tree, /metrics and POST /chaos."""

from __future__ import annotations

import logging
import random
from typing import Any

import trio

from switchd.billing import StoreStatus, store_status
from switchd.otp import (
    OTPError,
    Pid,
    TreeNode,
    count_children,
    process_info,
    processes,
    stop,
    tree,
    whereis,
    which_children,
)

from ._dispatch import Answer, ApiRequest, Json, Text
from ._errors import BadRequest, ChaosKill, Forbidden, Unavailable
from ._handlers import wait_for_name
from ._json import json_object, only
from ._metrics import CONTENT_TYPE, Scrape
from ._state import ApiState

log = logging.getLogger(__name__)

TREE_CHILDREN = 50
"""Children listed per process in GET /tree; more are counted, not listed."""
SERVERS = ("router", "billing", "events")
"""What POST /chaos kills besides calls: the servers calls reach by name."""
MAX_SERVER_KILLS = 3
"""Kills of one server per request: the root allows 5 restarts in 10 s before the node gives up."""
MAX_CALL_KILLS = 100


def uptime(state: ApiState) -> float:
    """Seconds since the node's root supervisor started (0.0 when it is not found)."""
    root = whereis(state.view.root)
    info = process_info(root) if root is not None else None
    return 0.0 if info is None else trio.current_time() - info.started_at


async def store_or_none() -> StoreStatus | None:
    """The billing store's status, or None when it does not answer within a second."""
    try:
        return await store_status(timeout=1.0)
    except OTPError:
        return None


async def health(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    draining = state.view.admission.draining
    body = {"status": "draining" if draining else "ok", "node": state.view.node, "version": state.view.version,
            "uptime": round(uptime(state), 3)}
    return Json(body, 503 if draining else 200)


async def status(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    view, stats = state.view, state.stats
    try:
        active = (await count_children(view.calls)).active
    except OTPError:
        active = 0
    store = await store_or_none()
    queue = view.cdrs.statistics()
    conns = view.connections.statistics()
    restarts = {p.name: p.restarts for p in processes() if p.name is not None and p.kind != "call"}
    return Json({
        "node": view.node, "version": view.version, "uptime": round(uptime(state), 3),
        "draining": view.admission.draining,
        "calls": {"active": active, "attempts": stats.attempts, "cps_1m": round(stats.cps(60.0), 3),
                  "cps_10s": round(stats.cps(10.0), 3),
                  "ended": dict(stats.ended)},
        "setup_latency": stats.percentiles(),
        "restarts": restarts,
        "billing": {
            "store_up": store is not None,
            "connected": store is not None and store.connected,
            "spooling": store is not None and store.spooling,
            "queue_depth": queue.depth, "spooled": queue.spooled, "quarantined": queue.quarantined,
            "written": None if store is None else store.written_ops,
            "db_errors": None if store is None else store.db_errors,
        },
        "rejections": dict(view.admission.rejections.statistics().by_cause),
        "connections": {"open": conns.open, "carrying_calls": conns.carrying_calls, "accepted": conns.accepted,
                        "max": conns.max_connections, "accept_failures": conns.accept_failures,
                        "closed": dict(conns.closed.by_cause)},
    })


def _tree_node(node: TreeNode) -> dict[str, Any]:
    info = node.info
    kids = node.children
    out: dict[str, Any] = {
        "pid": str(info.pid), "name": info.name, "kind": info.kind, "child_id": info.child_id,
        "parent": None if info.parent is None else str(info.parent), "restarts": info.restarts,
        "mailbox": info.mailbox_depth, "status": info.status,
        "children": [_tree_node(k) for k in kids[:TREE_CHILDREN]],
    }
    calls = sum(1 for k in kids if k.info.kind == "call")
    if calls:
        out["calls"] = {"count": calls}
    if len(kids) > TREE_CHILDREN:
        out["truncated"] = len(kids) - TREE_CHILDREN
    return out


async def supervision_tree(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    roots = tree()
    roots.sort(key=lambda n: n.info.name != state.view.root)  # the node's own tree first
    return Json({"node": state.view.node, "processes": [_tree_node(r) for r in roots]})


async def metrics(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    scrape = Scrape(await store_or_none(), processes(), uptime(state))
    return Text(state.metrics.render(scrape), CONTENT_TYPE)


async def chaos(state: ApiState, request: ApiRequest) -> Answer:
    request.query.done()
    if not state.settings.chaos:
        raise Forbidden("chaos is switched off: set [api] chaos = true to let POST /chaos kill processes")
    body = json_object(request.body, request.content_type)
    only(body, {"kill", "count"}, "POST /chaos")
    what, count = body.get("kill"), body.get("count", 1)
    if what not in ("call", *SERVERS):
        raise BadRequest(f"kill must be one of call, {', '.join(SERVERS)}; not {what!r}")
    most = MAX_CALL_KILLS if what == "call" else MAX_SERVER_KILLS
    if type(count) is not int or not 1 <= count <= most:
        raise BadRequest(f"count must be a whole number from 1 to {most} for {what}, not {count!r}")
    killed = await (_kill_calls(state, count) if what == "call" else _kill_server(str(what), count))
    log.warning("chaos: killed %d process(es): %s", len(killed), ", ".join(k["name"] or k["pid"] for k in killed),
                extra={"kill": what, "killed": len(killed)})
    return Json({"killed": killed})


async def _kill(pid: Pid, name: str | None) -> dict[str, Any] | None:
    try:
        await stop(pid, ChaosKill("killed by POST /chaos"), timeout=5.0)
    except OTPError as exc:  # it ended by itself meanwhile, or its cleanup overran: not ours to report
        log.info("chaos: %s not killed: %s", name or pid, exc)
        return None
    return {"name": name, "pid": str(pid)}


async def _kill_calls(state: ApiState, count: int) -> list[dict[str, Any]]:
    try:
        pids = [c.pid for c in await which_children(state.view.calls) if c.pid is not None]
    except OTPError as exc:
        raise Unavailable(f"the calls supervisor did not answer: {exc}") from None
    killed = []
    for pid in random.sample(pids, min(count, len(pids))):
        info = process_info(pid)
        done = await _kill(pid, None if info is None else info.name)
        if done is not None:
            killed.append(done)
    return killed


async def _kill_server(name: str, count: int) -> list[dict[str, Any]]:
    killed: list[dict[str, Any]] = []
    for _ in range(count):
        pid = whereis(name) or await wait_for_name(name)
        if pid is None:
            raise Unavailable(f"{name} is not running (its supervisor has not restarted it)")
        done = await _kill(pid, name)
        if done is None:
            continue
        successor = await wait_for_name(name, other_than=pid)
        done["restarted_as"] = None if successor is None else str(successor)
        killed.append(done)
    return killed
