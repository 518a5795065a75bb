"""switchd.otp benchmark: four figures, each with a baseline measured in the same run.

Run: python bench/otp_bench.py   (takes 15-30 s; results go in docs/performance.md)

Figures 1-3 are medians over 7 batches that alternate with their baseline's batches, timed in
CPU time of this process, so load from other jobs on the machine hits figure and baseline alike
and distorts neither much.

1. GenServer.call round trip (median µs) vs a raw-trio request/reply ping-pong over memory channels.
2. cast throughput (messages/s one server handles) vs raw trio memory-channel send_nowait/receive.
3. DynamicSupervisor start_child + exit of a trivial GenServer per second vs raw trio
   nursery.start + exit of a task.
4. memory per idle GenServer (tracemalloc, 10,000 of them) vs a raw idle trio task; and, for the
   call sessions, the same for an idle StateMachine.
"""

from __future__ import annotations

import gc
import platform
import statistics
import sys
import time
import tracemalloc
from typing import Any

import trio
import trio.testing

from switchd.otp import (
    Caller,
    ChildSpec,
    DynamicSupervisor,
    GenServer,
    KeepState,
    NoReply,
    Reply,
    StateMachine,
    Stop,
    call,
    cast,
    start_child,
)

# CPU time of this process: the figures are single-threaded, and CPU time is what other jobs on the
# shared cores distort least (on an idle machine it equals wall-clock time).
clock = time.process_time

ROUNDS = 7          # medians over this many batches
CALLS = 20_000      # calls per batch
CASTS = 40_000      # casts per batch
STARTS = 1_000      # starts per batch
IDLE = 10_000


class Echo(GenServer[int]):
    async def init(self) -> int:
        return 0

    async def handle_call(self, request: Any, caller: Caller, state: int) -> Reply[int]:
        return Reply(request, state)

    async def handle_cast(self, request: Any, state: int) -> NoReply[int]:
        return NoReply(state + 1)


class IdleMachine(StateMachine[str, int]):
    async def init(self) -> tuple[str, int]:
        return "idle", 0

    async def handle_event(self, event: Any, content: Any, state: str, data: int) -> KeepState[int]:
        return KeepState(data)


class Brief(GenServer[None]):
    """Exits as soon as it gets its first cast."""

    async def init(self) -> None:
        return None

    async def handle_cast(self, request: Any, state: None) -> Stop[None]:
        return Stop("normal", state)


# -- 1. call round trip ------------------------------------------------------------------------

async def call_round_trip() -> tuple[float, float]:
    """Median µs per call, and per raw ping-pong; batches alternate so load noise hits both alike."""
    req_send, req_recv = trio.open_memory_channel[tuple[object, trio.MemorySendChannel[object]]](0)
    rep_send, rep_recv = trio.open_memory_channel[object](0)

    async def raw_server() -> None:
        async for request, reply_to in req_recv:
            await reply_to.send(request)

    otp_samples, raw_samples = [], []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(raw_server)
        pid = await nursery.start(Echo.start_link)
        for _ in range(ROUNDS):
            t0 = clock()
            for i in range(CALLS):
                await req_send.send((i, rep_send))
                await rep_recv.receive()
            raw_samples.append((clock() - t0) / CALLS * 1e6)
            t0 = clock()
            for i in range(CALLS):
                await call(pid, i)
            otp_samples.append((clock() - t0) / CALLS * 1e6)
        nursery.cancel_scope.cancel()
    return statistics.median(otp_samples), statistics.median(raw_samples)


# -- 2. cast throughput ------------------------------------------------------------------------

async def cast_throughput() -> tuple[float, float]:
    """Median msg/s for casts to one server, and for a raw memory channel; batches alternate."""
    send, recv = trio.open_memory_channel[object](float("inf"))
    batch_done = trio.Event()

    async def consumer() -> None:
        nonlocal batch_done
        n = 0
        async for _ in recv:
            n += 1
            if n == CASTS:
                n = 0
                batch_done.set()

    otp_rates, raw_rates = [], []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        pid = await nursery.start(Echo.start_link)
        for _ in range(ROUNDS):
            await trio.testing.wait_all_tasks_blocked()
            batch_done = trio.Event()
            t0 = clock()
            for i in range(CASTS):
                send.send_nowait(i)
            await batch_done.wait()
            raw_rates.append(CASTS / (clock() - t0))
            t0 = clock()
            for i in range(CASTS):
                cast(pid, i)
            await call(pid, "sync", timeout=60.0)  # handled after every cast
            otp_rates.append(CASTS / (clock() - t0))
        nursery.cancel_scope.cancel()
    return statistics.median(otp_rates), statistics.median(raw_rates)


# -- 3. start_child + exit ---------------------------------------------------------------------

async def start_exit_rate() -> tuple[float, float]:
    """Median starts+exits/s through a DynamicSupervisor, and of raw nursery.start; alternating."""

    async def brief(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.lowlevel.checkpoint()

    spec = ChildSpec("brief", Brief.start_link)
    otp_rates, raw_rates = [], []
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(DynamicSupervisor.start_link)
        for _ in range(ROUNDS):
            async with trio.open_nursery() as raw:
                t0 = clock()
                for _ in range(STARTS):
                    await raw.start(brief)
            raw_rates.append(STARTS / (clock() - t0))
            t0 = clock()
            for _ in range(STARTS):
                pid = await start_child(sup, spec)
                cast(pid, "exit")
            await trio.testing.wait_all_tasks_blocked()
            otp_rates.append(STARTS / (clock() - t0))
        nursery.cancel_scope.cancel()
    return statistics.median(otp_rates), statistics.median(raw_rates)


# -- 4. memory per idle server -----------------------------------------------------------------

async def raw_idle_memory() -> float:
    async def idle(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(IDLE):
            await nursery.start(idle)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        nursery.cancel_scope.cancel()
    return (after - before) / IDLE


async def otp_idle_memory(supervised: bool, behaviour: Any = Echo) -> float:
    spec = ChildSpec("idle", behaviour.start_link)
    async with trio.open_nursery() as nursery:
        sup = await nursery.start(DynamicSupervisor.start_link)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(IDLE):
            if supervised:
                await start_child(sup, spec)
            else:
                await nursery.start(behaviour.start_link)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        nursery.cancel_scope.cancel()
    return (after - before) / IDLE


def line(label: str, figure: float, unit: str, baseline: float, target: str) -> None:
    print(f"{label:<44} {figure:>12,.1f} {unit:<6} baseline {baseline:>12,.1f}  "
          f"ratio {figure / baseline:5.2f}x  target {target}")


async def main() -> None:
    print(f"python {platform.python_version()}  trio {trio.__version__}  {platform.machine()}  "
          f"{sys.platform}")
    otp_us, raw_us = await call_round_trip()
    line("GenServer.call round trip (median)", otp_us, "µs", raw_us, "<= 1.5x baseline")
    otp_rate, raw_rate = await cast_throughput()
    line("cast throughput (one server)", otp_rate, "msg/s", raw_rate, ">= 150,000/s")
    otp_rate, raw_rate = await start_exit_rate()
    line("DynamicSupervisor start_child + exit", otp_rate, "/s", raw_rate, ">= 20,000/s")
    raw_mem = await raw_idle_memory()
    line("memory per idle GenServer (bare)", await otp_idle_memory(False), "B", raw_mem, "<= 4096 B")
    line("memory per idle GenServer (supervised)", await otp_idle_memory(True), "B", raw_mem,
         "<= 4096 B")
    line("memory per idle StateMachine (supervised)", await otp_idle_memory(True, IdleMachine), "B",
         raw_mem, "(no target)")


if __name__ == "__main__":
    trio.run(main)
