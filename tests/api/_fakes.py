"""An ApiState without a node around it, and an HTTP connection to it over a memory stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio
import trio.testing

from switchd.api import ApiSettings, ApiState, HttpConnection, NodeView, endpoints
from switchd.api._dispatch import Route
from switchd.billing import CdrQueue
from switchd.otp import Process
from switchd.switch import Admission, ConnectionTable, WireTap

from ._client import HttpClient


@dataclass(frozen=True, slots=True)
class _Reloaded:
    ok: bool = True
    routes: int = 3
    rates: int | None = None
    gateways: tuple[str, ...] = ()
    error: str | None = None


async def _reload() -> _Reloaded:
    return _Reloaded()


def make_state(settings: ApiSettings | None = None, *, database_url: str = "sqlite://",
               admission: Admission | None = None) -> ApiState:
    view = NodeView(node="test-node", version="9.9.9", admission=admission or Admission(),
                    connections=ConnectionTable(),
                    cdrs=CdrQueue(), tap=WireTap(), database_url=database_url, reload=_reload,
                    reloads=lambda: 0)
    return ApiState(settings or ApiSettings(port=0), view)


@asynccontextmanager
async def served(state: ApiState | None = None, routes: Sequence[Route] | None = None
                 ) -> AsyncIterator[tuple[HttpClient, trio.abc.Stream]]:
    """A client on one connection to an HttpConnection process over a memory stream."""
    state = state or make_state()
    ours, theirs = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(Process.start_link, _serve, ours, state,
                                    routes if routes is not None else endpoints(state.settings)))
        yield HttpClient(theirs), theirs
        nursery.cancel_scope.cancel()


async def _serve(stream: trio.abc.Stream, state: ApiState, routes: Sequence[Route]) -> None:
    await HttpConnection(stream, state, routes).serve()

