"""The "sip" supervisor: its children in order, and gateway links brought in line with a reload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from switchd.otp import NoProcess, Pid, whereis, which_children
from switchd.switch import Gateway
from switchd.switch._sip_connection import ConnectionSettings
from switchd.switch._sip_service import sip_service_spec, update_gateway_links

from .transport_helpers import Recorder

GW1 = Gateway(name="gw1", host="127.0.0.1", port=5071)
GW2 = Gateway(name="gw2", host="127.0.0.1", port=5072)


@asynccontextmanager
async def sip_service(gateways: list[Gateway]) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    spec = sip_service_spec("127.0.0.1", 0, gateways, ConnectionSettings(), recorder)
    async with trio.open_nursery() as nursery:
        pid: Pid = await nursery.start(spec.start)
        assert whereis("sip") == pid
        yield recorder
        nursery.cancel_scope.cancel()


async def test_connections_and_gateway_links_start_before_the_listener() -> None:
    async with sip_service([GW1, GW2]):
        assert [c.id for c in await which_children("sip")] == ["connections", "gateways", "listener"]
        assert [c.id for c in await which_children("gateways")] == ["gateway:gw1", "gateway:gw2"]


async def test_a_reload_starts_links_for_new_gateways_and_replaces_moved_ones() -> None:
    async with sip_service([GW1]) as recorder:
        before = whereis("gateway:gw1")
        moved = Gateway(name="gw1", host="127.0.0.1", port=6000)
        changes = await update_gateway_links([GW1], [moved, GW2], ConnectionSettings(), recorder)
        assert changes == ["gw1: 127.0.0.1:5071 -> 127.0.0.1:6000", "gw2: new at 127.0.0.1:5072"]
        assert whereis("gateway:gw2") is not None
        after = whereis("gateway:gw1")
        assert after is not None and after != before


async def test_an_unchanged_gateway_keeps_its_link() -> None:
    async with sip_service([GW1]) as recorder:
        before = whereis("gateway:gw1")
        assert await update_gateway_links([GW1], [GW1], ConnectionSettings(), recorder) == []
        assert whereis("gateway:gw1") == before


async def test_updating_links_without_a_running_sip_service_raises_no_process() -> None:
    with pytest.raises(NoProcess, match="gateways"):
        await update_gateway_links([], [GW1], ConnectionSettings(), Recorder())
