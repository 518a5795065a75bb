"""The "sip" supervisor: its children in order, and gateway links brought in line with a reload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from switchd.otp import NoProcess, Pid, whereis, which_children
from switchd.sip import Request, Response
from switchd.switch import Gateway, UdpPeer, udp_bound, udp_socket_name
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
        assert [c.id for c in await which_children("sip")] == ["connections", "gateways", "contacts", "listener"]
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


async def test_udp_sockets_start_after_the_connections_and_before_the_gateway_links() -> None:
    spec = sip_service_spec("127.0.0.1", 0, [GW1], ConnectionSettings(), Recorder(), udp=[("127.0.0.1", 0)],
                            udp_dispatch=UdpRecorder())
    async with trio.open_nursery() as nursery:
        await nursery.start(spec.start)
        children = [c.id for c in await which_children("sip")]
        assert children == ["connections", udp_socket_name("127.0.0.1:0"), "gateways", "contacts", "listener"]
        assert (await udp_bound(udp_socket_name("127.0.0.1:0"))).startswith("127.0.0.1:")
        nursery.cancel_scope.cancel()


def test_udp_addresses_without_a_dispatcher_for_them_are_refused() -> None:
    with pytest.raises(ValueError, match="udp_dispatch"):
        sip_service_spec("127.0.0.1", 0, [], ConnectionSettings(), Recorder(), udp=[("127.0.0.1", 0)])


class UdpRecorder:
    async def __call__(self, message: Request | Response, peer: UdpPeer, received_at: float, source: str) -> None:
        pass
