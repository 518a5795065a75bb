"""The node's policy for CPython's cyclic garbage collector, and the process that sweeps what it defers.

A call's objects (its session, legs, dialogs, messages) are freed by reference counting when the
call ends: they form no cycles the collector must find (the last, a process and its Pid, is gone:
a process holds its Pid weakly; tests/otp/test_process.py checks it). But a full (generation-2) collection walks every live tracked object
— everything imported and built at start-up and every object of every call up — and the event
loop stands still meanwhile: 1 to 4 s with 4,000 to 19,000 calls up, once every few thousand calls
set up. So, once the tree is up (`settle`):

* what start-up built is collected once and frozen (`gc.freeze`: moved to the permanent
  generation, which no collection visits);
* a young collection waits for 10,000 net allocations instead of 700, and generation 1 is
  collected every 5 young ones: the objects of calls being set up are rarely caught alive;
* **and what survives a generation-1 (or full) collection is frozen too**: the long-lived objects
  of the calls up never reach generation 2, so no collection walks them, and a full collection
  stays as small as a young one however many calls are up. A frozen object is still freed by
  reference counting the moment its call ends; only a *cycle* frozen and dropped later is not
  found by the automatic collections.

Those few cycles are the price, and the `Sweeper` pays it back: a GenServer of the node's tree
that, when the node is quiet (at most ``quiet_calls`` calls up) and ``every`` seconds have passed
since its last sweep, unfreezes everything, runs one full collection and freezes again. That is
a pause of one full collection over every live object (0.72 s here once 50,000 held calls had
ended, while each still left a two-object cycle), taken while few calls can feel it; `sweep` says what it found. A node that is never quiet keeps its cycles frozen:
memory grows by what they hold (bytes a call), never the pause.

`release` undoes `settle` (tests, and a `run_daemon` that returns in a process that goes on).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from switchd.otp import ChildSpec, GenServer, NoReply, self_pid, send_after

log = logging.getLogger(__name__)

THRESHOLDS = (10_000, 5, 10)
"""CPython's collector thresholds once the node runs (the default is 700, 10, 10)."""

NAME = "collector"
"""The name the node's Sweeper registers under."""

_thresholds_before: tuple[int, int, int] | None = None  # set while settled: what `release` puts back


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    """A `gc.callbacks` entry: after a generation-1 or full collection, freeze what survived it."""
    if phase == "stop" and info["generation"] >= 1:
        gc.freeze()


def settle() -> None:
    """Collect and freeze what start-up built, raise the thresholds and freeze the survivors of every
    older collection from now on (see the module docstring). Idempotent."""
    global _thresholds_before
    if _thresholds_before is not None:
        return
    gc.collect()
    gc.freeze()
    _thresholds_before = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    gc.callbacks.append(_freeze_survivors)


def settled() -> bool:
    """True between `settle` and `release`."""
    return _thresholds_before is not None


def release() -> None:
    """Undo `settle`: no more freezing, the thresholds as they were, everything frozen back in the
    generations (a full collection then finds the cycles). Idempotent."""
    global _thresholds_before
    if _thresholds_before is None:
        return
    thresholds, _thresholds_before = _thresholds_before, None
    if _freeze_survivors in gc.callbacks:
        gc.callbacks.remove(_freeze_survivors)
    gc.set_threshold(*thresholds)
    gc.unfreeze()


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep did: unreachable objects found (and freed), objects frozen again, seconds taken."""

    found: int
    frozen: int
    seconds: float


def sweep() -> Swept:
    """Unfreeze, collect everything, freeze again: the cycles frozen calls left behind are freed.

    The event loop stands still for one full collection over every live object.
    """
    began = time.perf_counter()
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return Swept(found, gc.get_freeze_count(), time.perf_counter() - began)


# -- the sweeper ----------------------------------------------------------------------------------


CallsUp = Callable[[], Awaitable[int]]
"""How many calls the node has up now."""


@dataclass(frozen=True, slots=True)
class _Check:
    pass


@dataclass(slots=True)
class _State:
    calls_up: CallsUp
    every: float
    check: float
    quiet_calls: int
    last: float  # trio time of the last sweep (or of the start)
    sweeps: int = 0
    last_swept: Swept | None = None


class Sweeper(GenServer[_State]):
    """Sweeps (`sweep`) when the node is quiet and ``every`` seconds have passed since the last one.

    Only a settled collector is swept: in a process that did not `settle` (a test's tree), the
    frozen generation is not the node's to touch, and the Sweeper only waits.
    """

    async def init(self, calls_up: CallsUp, every: float, check: float, quiet_calls: int) -> _State:
        for name, value in (("every", every), ("check", check)):
            if not value > 0:
                raise ValueError(f"Sweeper: {name} must be > 0, not {value!r}")
        send_after(self_pid(), _Check(), check)
        return _State(calls_up, every, check, quiet_calls, trio.current_time())

    async def handle_info(self, msg: object, state: _State) -> NoReply[_State]:
        if not isinstance(msg, _Check):
            log.warning("collector sweeper: unexpected message %r", msg)
            return NoReply(state)
        send_after(self_pid(), _Check(), state.check)
        now = trio.current_time()
        if not settled() or now - state.last < state.every:
            return NoReply(state)
        up = await state.calls_up()
        if up > state.quiet_calls:
            return NoReply(state)
        swept = sweep()
        state.last, state.sweeps, state.last_swept = now, state.sweeps + 1, swept
        log.info("collector swept with %d call(s) up: %d unreachable object(s) freed, %d frozen again, %.0f ms",
                 up, swept.found, swept.frozen, swept.seconds * 1000,
                 extra={"found": swept.found, "frozen": swept.frozen, "seconds": swept.seconds})
        return NoReply(state)

    def format_status(self, state: _State) -> str:
        last = state.last_swept
        return (f"{state.sweeps} sweep(s)" + ("" if last is None else
                f", last freed {last.found} in {last.seconds * 1000:.0f} ms") +
                f"; when <= {state.quiet_calls} calls up, every {state.every:g} s")


def sweeper_spec(calls_up: CallsUp, *, every: float = 300.0, check: float = 10.0, quiet_calls: int = 20,
                 name: str = NAME) -> ChildSpec:
    """The supervisor child spec of the node's Sweeper (see `Sweeper`), registered as `name`."""
    return ChildSpec(id=name, start=partial(Sweeper.start_link, calls_up, every, check, quiet_calls, name=name),
                     shutdown=1.0)
