"""A whole switchd node in the test's trio loop, with simulated gateways, and its API on 127.0.0.1.

`running_node` starts a SimGateway (answers, busy, rings forever … by dialled prefix), then
`switchd.app.serve` with a configuration routing every number to it, the SIP listener and the
API on free ports; it yields a `Node` to place calls through and query, and stops the node
cleanly after (exit code 0 checked).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio

from switchd import otp
from switchd.api import api_listening_on
from switchd.app import serve
from switchd.config import Address, Config, load
from switchd.sim import Answer, Behaviours, Busy, NeverAnswer, UacConnection, open_uac, start_sim
from switchd.switch import listening_on

from ._client import HttpAnswer, HttpClient, connect

REPO = Path(__file__).resolve().parents[2]
CALLER = "14155550199"
ANSWERS = "14155550100"  # answered after a short ring
BUSY = "15550001"  # 486
RINGS = "14445550000"  # rings until cancelled
SIM = Behaviours(default=Answer(ring=0.05), prefixes={"1555": Busy(), "1444": NeverAnswer()})


class Events:
    """The node's events so far, and a way to wait for one (woken by each event, never polled)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self._changed = trio.Event()

    def add(self, event: Any) -> None:
        self.seen.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.seen if isinstance(e, kind)]

    async def wait_for(self, done: Callable[[Events], bool], *, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not done(self):
                await self._changed.wait()


class _Recorder(otp.EventHandler[Events]):
    async def init(self, arg: Any) -> Events:
        assert isinstance(arg, Events)
        return arg

    async def handle_event(self, event: Any, state: Events) -> Events:
        state.add(event)
        return state


@dataclass
class Node:
    config: Config
    sip: str
    api: tuple[str, int]
    uac: UacConnection
    events: Events
    token: str | None = None

    @asynccontextmanager
    async def client(self) -> AsyncIterator[HttpClient]:
        async with connect(*self.api) as client:
            yield client

    async def get(self, target: str) -> HttpAnswer:
        async with self.client() as client:
            return await client.get(target, token=self.token)

    async def post(self, target: str, value: object) -> HttpAnswer:
        async with self.client() as client:
            return await client.post_json(target, value, token=self.token)

    async def until_state(self, call_id: str, state: str) -> None:
        """Ask the API until the call is in `state` (there is no event for the caller's ACK: CallAnswered
        is the callee's answer, and the caller's 200 may still be held for the CDR's answer step)."""
        with trio.fail_after(10):
            while (await self.get(f"/calls/{quote(call_id, safe='')}")).json()["state"] != state:
                await trio.sleep(0.01)

    async def request(self, method: str, target: str, *, body: bytes = b"",
                      headers: list[tuple[str, str]] | None = None) -> HttpAnswer:
        auth = [] if self.token is None else [("Authorization", f"Bearer {self.token}")]
        async with self.client() as client:
            return await client.request(method, target, body=body, headers=[*auth, *(headers or [])])


def node_config(tmp_path: Path, gateway_port: int, *, chaos: bool = False, token: str | None = None,
                trace_calls: int = 100) -> Config:
    api = [f"chaos = {json.dumps(chaos)}", f"trace_calls = {trace_calls}"]
    if token is not None:
        api.append(f"token = {json.dumps(token)}")
    text = "\n".join([
        'node = "api-test"', 'data_dir = "data"',
        "[api]", *api,
        "[billing]", f"rate_deck = {json.dumps(str(REPO / 'config' / 'rates.csv'))}",
        "[timers]", "drain_timeout = 1.0",
        "[[gateways]]", 'name = "sim"', f'address = "127.0.0.1:{gateway_port}"',
        "[[routes]]", 'prefix = ""', 'gateways = ["sim"]',
    ])
    path = tmp_path / "switchd.toml"
    path.write_text(text)
    config = load(path)  # from a file: POST /routes/reload reads it again
    anywhere = Address("127.0.0.1", 0)  # port 0, which a file may not say: any free port
    return replace(config, sip=replace(config.sip, listen=anywhere), api=replace(config.api, listen=anywhere))


async def _serve(config: Config, codes: list[int], *, task_status: trio.TaskStatus[otp.Pid]) -> None:
    codes.append(await serve(config, task_status=task_status))


@asynccontextmanager
async def running_node(tmp_path: Path, *, chaos: bool = False, token: str | None = None,
                       trace_calls: int = 100) -> AsyncIterator[Node]:
    codes: list[int] = []
    async with trio.open_nursery() as sims:
        sim = await start_sim(sims, ["127.0.0.1:0"], SIM, name="gw-sim")
        config = node_config(tmp_path, sim.addresses[0][1], chaos=chaos, token=token, trace_calls=trace_calls)
        async with trio.open_nursery() as nodes:
            await nodes.start(_serve, config, codes)
            events = Events()
            await otp.add_handler("events", "test", _Recorder, events)
            [(host, port)] = await listening_on()
            [api] = await api_listening_on()
            async with open_uac(f"{host}:{port}") as uac:
                yield Node(config, f"{host}:{port}", api, uac, events, token)
            await otp.stop("switchd", timeout=30.0)
        sims.cancel_scope.cancel()
    assert codes == [0]
