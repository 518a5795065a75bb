"""Idle connections cannot deny service: a real `python -m switchd run` under a low open-file limit.

With ``ulimit -n 1024``, 1,100 idle connections used to leave a real INVITE unanswered. Here the
daemon runs with RLIMIT_NOFILE = 256 and the test opens 400 idle connections to it, then asks
for an OPTIONS and places a call on a new connection: both must be answered. Twice:

* with the automatic ``max_connections`` (the limit less 128): the listener sheds the connection
  idle longest for each one beyond the limit, and the node never runs out of descriptors, so the
  call also gets its gateway connection and a CDR;
* with ``max_connections`` far above the file limit: accept really fails with EMFILE, and the
  listener sheds idle connections and backs off, logging the episode once.

Everything on 127.0.0.1, bounded in time; the daemon is stopped by its PID.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from functools import partial

import pytest
import trio

from switchd.billing import Disposition
from switchd.sim import Answer, Behaviours, Outcome, open_uac, start_sim
from switchd.sip import Response
from tests.integration._daemon import GatewaySpec, Switchd
from tests.integration.conftest import StartSwitchd
from tests.switch.transport_helpers import Peer, request

pytestmark = pytest.mark.integration

NOFILE = 256
FLOOD = 400


@contextlib.asynccontextmanager
async def a_gateway() -> AsyncIterator[GatewaySpec]:
    async with trio.open_nursery() as nursery:
        sim = await start_sim(nursery, ["127.0.0.1:0"], Behaviours(default=Answer(ring=0.05)), name="gw1")
        yield GatewaySpec("gw1", sim.addresses[0][1])
        nursery.cancel_scope.cancel()


async def flood(switchd: Switchd, stack: contextlib.AsyncExitStack) -> list[trio.SocketStream]:
    """FLOOD idle connections to the daemon, kept open by `stack` (they send nothing)."""
    streams = []
    for _ in range(FLOOD):
        stream = await trio.open_tcp_stream("127.0.0.1", switchd.sip_port)
        await stack.enter_async_context(stream)
        streams.append(stream)
    return streams


async def options_answered(switchd: Switchd) -> Response:
    """An OPTIONS on a new connection, and the answer the daemon writes."""
    with trio.fail_after(20):
        peer = Peer(await trio.open_tcp_stream("127.0.0.1", switchd.sip_port))
        async with peer.stream:
            await peer.send(request("OPTIONS", "probe-after-flood"))
            answer = await peer.read()
    assert isinstance(answer, Response), f"no answer\n--- switchd log ---\n{switchd.log()}"
    return answer


async def still_served(start_switchd: StartSwitchd, sip: Mapping[str, object]) -> Switchd:
    async with a_gateway() as gateway:
        switchd = await trio.to_thread.run_sync(partial(start_switchd, [gateway], sip=sip, nofile=NOFILE))
        async with open_uac(switchd.target) as early:  # the gateway link is up before the flood
            first = await early.call("14155550199", "14155550100", hold=0.1, timeout=10)
        assert first.outcome is Outcome.ANSWERED, first
        async with contextlib.AsyncExitStack() as stack:
            await flood(switchd, stack)
            assert (await options_answered(switchd)).status == 200
            with trio.fail_after(30):
                async with open_uac(switchd.target) as uac:
                    result = await uac.call("14155550199", "14155550100", hold=0.1, timeout=20)
            assert result.outcome is Outcome.ANSWERED, f"{result}\n--- switchd log ---\n{switchd.log()}"
        assert switchd.alive()
        assert await trio.to_thread.run_sync(switchd.stop) == 0
    cdrs = switchd.cdrs()
    assert [c.disposition for c in cdrs] == [Disposition.ANSWERED] * 2
    return switchd


async def test_under_an_idle_flood_beyond_max_connections_the_node_sheds_idle_ones_and_serves_calls(
        start_switchd: StartSwitchd) -> None:
    switchd = await still_served(start_switchd, {})
    log = switchd.log(tail=10_000)
    assert f"at most {NOFILE - 128} connections" in log
    assert "shed idle connection" in log
    assert "accept failed" not in log  # the automatic limit keeps descriptors for the rest of the node


async def test_under_an_idle_flood_beyond_the_open_file_limit_accept_survives_emfile_and_logs_it_once(
        start_switchd: StartSwitchd) -> None:
    switchd = await still_served(start_switchd, {"max_connections": 100_000})
    log = switchd.log(tail=10_000)
    assert log.count("listener: accept failed") == 1, log
    assert "Too many open files" in log
