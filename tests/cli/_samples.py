"""API answers as the contract (shared by the API and the CLI) describes them, for the fake API."""

from __future__ import annotations

from typing import Any

STATUS: dict[str, Any] = {
    "node": "itest", "uptime": 3725.4, "draining": False,
    "calls": {"active": 12, "cps_1m": 2.05, "cps_10s": 3.4},
    "setup_latency": {"p50": 0.0123, "p95": 0.0401, "p99": 0.0804},
    "restarts": {"router": 1, "billing": 0, "events": 2},
    "billing": {"connected": True, "spooling": False, "queue_depth": 3, "spooled": 0, "quarantined": 0},
    "rejections": {"capacity": 4, "rate": 0},
    "connections": {"open": 5},
}


def _process(pid: str, name: str | None, kind: str, child_id: str | None, *, restarts: int = 0,
             mailbox: int = 0, children: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"pid": pid, "name": name, "kind": kind, "child_id": child_id, "parent": None, "restarts": restarts,
            "mailbox": mailbox, "status": "running", "children": children or [], **extra}


CALL_PROCESSES = [_process(f"<0.{40 + i}.0>", None, "state_machine", f"call:c{i}@host") for i in range(3)]

TREE: dict[str, Any] = {
    "node": "itest",
    "processes": [
        _process("<0.1.0>", "switchd", "supervisor", None, children=[
            _process("<0.2.0>", "events", "event_manager", "events", restarts=2),
            _process("<0.3.0>", "billing", "gen_server", "billing", mailbox=7),
            _process("<0.4.0>", "router", "gen_server", "router", restarts=1),
            _process("<0.5.0>", "calls", "supervisor", "calls", children=CALL_PROCESSES, calls={"count": 12}),
            _process("<0.6.0>", None, "supervisor", "sip", children=[
                _process("<0.7.0>", None, "process", "listener"),
            ]),
        ]),
    ],
}

CALLS: dict[str, Any] = {
    "calls": [
        {"call_id": "c0@host", "state": "answered", "caller": "+14155550199", "callee": "+14155550100",
         "gateway": "local-sim", "started_at": "2026-12-02T06:35:46.798Z",
         "answered_at": "2026-12-02T06:35:47.801Z", "duration": 61.5, "pid": "<0.40.0>"},
        {"call_id": "c1@host", "state": "ringing", "caller": "+14155550198", "callee": "+442071234567",
         "gateway": None, "started_at": "2026-12-02T06:36:40.000Z", "answered_at": None, "duration": 2.25,
         "pid": "<0.41.0>"},
    ],
}


def _message(at: str, direction: str, leg: str, summary: str, peer: str) -> dict[str, Any]:
    first = summary.split(" ")[0]
    return {"at": f"2026-12-02T06:35:{at}Z", "direction": direction, "leg": leg, "peer": peer, "transport": "tcp",
            "summary": summary, "text": f"{summary} SIP/2.0\r\nVia: SIP/2.0/TCP {peer}\r\nCSeq: 1 {first}\r\n\r\n"}


CALLER, GATEWAY = "127.0.0.1:40000", "127.0.0.1:5070"
TRACE: dict[str, Any] = {
    "call_id": "c0@host",
    "messages": [
        _message("46.798", "in", "a", "INVITE sip:14155550100@127.0.0.1:5060", CALLER),
        _message("46.799", "out", "a", "100 Trying", CALLER),
        _message("46.801", "out", "b", "INVITE sip:14155550100@127.0.0.1:5070", GATEWAY),
        _message("46.803", "in", "b", "180 Ringing", GATEWAY),
        _message("46.804", "out", "a", "180 Ringing", CALLER),
        _message("47.805", "in", "b", "200 OK", GATEWAY),
        _message("47.806", "out", "a", "200 OK", CALLER),
        _message("47.810", "in", "a", "ACK", CALLER),
        _message("47.811", "out", "b", "ACK", GATEWAY),
        _message("49.812", "in", "a", "BYE", CALLER),
        _message("49.813", "out", "b", "BYE", GATEWAY),
        _message("49.815", "in", "b", "200 OK (BYE)", GATEWAY),
    ],
}
