"""How late the node's scheduler runs: a timer's lateness, sampled by a supervised GenServer.

Erlang gives a node its own load figures (``erlang:statistics(run_queue)``, scheduler utilisation,
``erlang:system_monitor`` with ``long_schedule``) and overload regulators (``jobs``,
``safetyvalve``) are built on them. Here the scheduler is trio's single event loop, and the figure
that says how overloaded it is is the one every task feels: how long after its deadline a timer
fires. A loop with work to spare wakes a timer within a fraction of a millisecond; a loop whose run
queue is longer than it can serve wakes it late by the queue's length — the same wait a message just
read from a socket has before its task runs.

`LagMonitor` arms a `send_after` every ``interval`` seconds and records, in a `LoopLag`, how late
each tick was handled. `LoopLag` is the ETS table of this design: one object, read without a
message by whoever decides on load (``switchd.switch.Admission`` refuses new calls while it is over
``limits.max_loop_lag``). It keeps an exponentially weighted mean (so one long pause — a full
garbage collection — counts for a little, a queue that stays long for everything) and the
largest single lateness seen, for the operator.

A stall also stops the monitor: its late tick is recorded when the stall ends, so a reader sees
the stall one tick later than the loop had it. Nothing is lost by that — the refusal is for the
calls that come after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import trio

from ._child_spec import ChildSpec
from ._gen_server import GenServer, NoReply
from ._messages import self_pid, send_after

log = logging.getLogger(__name__)

NAME = "loop_lag"
"""The name the node's LagMonitor registers under."""


class LoopLag:
    """The event loop's lateness as the monitor last measured it (seconds; see the module docstring).

    ``weight``: the share of a new sample in the mean, 0 < weight <= 1 (0.2: a lateness that lasts
    ~10 ticks is taken almost in full, one tick's is a fifth of it).
    """

    __slots__ = ("last", "max", "mean", "samples", "weight")

    def __init__(self, *, weight: float = 0.2) -> None:
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"LoopLag: weight must be in (0, 1], not {weight!r}")
        self.weight = weight
        self.last = 0.0  # the lateness of the last tick
        self.mean = 0.0  # exponentially weighted mean of the ticks' lateness
        self.max = 0.0  # the largest lateness of one tick since the node started
        self.samples = 0

    def record(self, late: float) -> None:
        """Add one tick's lateness (negative values, a clock's rounding, count as 0)."""
        late = max(late, 0.0)
        self.last = late
        self.mean += self.weight * (late - self.mean)
        self.max = max(self.max, late)
        self.samples += 1


@dataclass(frozen=True, slots=True)
class _Tick:
    due: float  # trio.current_time() the tick was armed for


@dataclass(slots=True)
class _State:
    lag: LoopLag
    interval: float


class LagMonitor(GenServer[_State]):
    """Measures the event loop's lateness into a `LoopLag` every ``interval`` seconds (module docstring)."""

    async def init(self, lag: LoopLag, interval: float) -> _State:
        if not interval > 0:
            raise ValueError(f"LagMonitor: interval must be > 0, not {interval!r}")
        _arm(interval)
        return _State(lag, interval)

    async def handle_info(self, msg: object, state: _State) -> NoReply[_State]:
        if isinstance(msg, _Tick):
            state.lag.record(trio.current_time() - msg.due)
            _arm(state.interval)
        else:
            log.warning("loop lag monitor: unexpected message %r", msg)
        return NoReply(state)

    def format_status(self, state: _State) -> str:
        lag = state.lag
        return f"loop lag {lag.mean * 1000:.2f} ms mean, {lag.max * 1000:.1f} ms max, every {state.interval:g} s"


def _arm(interval: float) -> None:
    send_after(self_pid(), _Tick(trio.current_time() + interval), interval)


def lag_monitor_spec(lag: LoopLag, *, interval: float = 0.01, name: str = NAME) -> ChildSpec:
    """The supervisor child spec of a LagMonitor recording into `lag` every `interval` seconds."""
    return ChildSpec(id=name, start=partial(LagMonitor.start_link, lag, interval, name=name), shutdown=1.0)
