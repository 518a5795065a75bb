"""Test behaviours shared by the otp tests: a Worker that journals its life."""

from __future__ import annotations

from typing import Any

import trio

from switchd.otp import Caller, GenServer, NoReply, Reply, Stop


class Journal:
    """What happened, in order: ("start", id), ("stop", id, reason)."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def starts(self) -> list[object]:
        return [e[1] for e in self.events if e[0] == "start"]

    def stops(self) -> list[tuple[object, object]]:
        return [(e[1], e[2]) for e in self.events if e[0] == "stop"]


class Worker(GenServer[tuple[Journal, str]]):
    """init(journal, id, fail=False, terminate_takes=0.0); calls: "crash", ("exit", reason), "ping"."""

    terminate_takes: float = 0.0

    async def init(self, journal: Journal, ident: str, fail: bool = False,
                   terminate_takes: float = 0.0) -> tuple[Journal, str]:
        if fail:
            raise RuntimeError(f"{ident} refuses to start")
        journal.events.append(("start", ident))
        self.terminate_takes = terminate_takes
        return journal, ident

    async def handle_call(self, request: Any, caller: Caller,
                          state: tuple[Journal, str]) -> Reply[tuple[Journal, str]] | Stop[tuple[Journal, str]]:
        match request:
            case "ping":
                return Reply("pong", state)
            case "crash":
                raise ValueError(f"{state[1]} crashed")
            case ("exit", reason):
                return Stop(reason, state, reply="ok")
        raise AssertionError(request)

    async def handle_cast(self, request: Any, state: tuple[Journal, str]) -> NoReply[tuple[Journal, str]]:
        if request == "crash":
            raise ValueError(f"{state[1]} crashed")
        return NoReply(state)

    async def terminate(self, reason: object, state: tuple[Journal, str]) -> None:
        journal, ident = state
        if self.terminate_takes:
            await trio.sleep(self.terminate_takes)
        journal.events.append(("stop", ident, reason if isinstance(reason, str) else type(reason).__name__))
