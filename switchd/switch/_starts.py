"""What a transport reader does with what the dispatcher hands back: nothing, an await, or a session start.

The dispatcher (`_dispatch.Dispatcher`) decides most messages without waiting: it sends the
message to its owner, or answers it (a refusal, OPTIONS, 481 … and the 503 of a new INVITE that
admission refuses). Those calls return `DONE`. Only an admitted new INVITE has work to wait for —
its CallSession's start under ``calls``, a round trip through the supervisor and the session's
init — and that comes back as a `NewCall`. A REGISTER or a challenged INVITE comes back as a
coroutine (the registrar and the accounts are asked).

A reader (a TCP connection's, a UDP socket's) awaits a coroutine as before, but runs a `NewCall`
in a task of its own (`Starts.spawn`) and reads on: an overload's excess INVITEs, read after an
admitted one, are answered 503 at once instead of waiting behind its start, and the next calls'
starts overlap instead of taking one supervisor round trip each in turn. A message with the
Call-ID of a start still running waits for that start (`Starts.settle`), so it finds the session
as before (a CANCEL right behind its INVITE; on UDP the socket absorbed a retransmission already).
At most ``limit`` starts run at once per reader; one more waits for the oldest.

Every result is awaitable, so ``await dispatcher(...)`` (the tests, anything that wants the whole
work done) does all of it in line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import trio

log = logging.getLogger(__name__)

MAX_STARTS = 64
"""Session starts one reader runs at once before it waits for the oldest."""


class _Done:
    """Awaitable that does nothing: the dispatcher finished the message in the call."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # a generator that ends at once

    def __repr__(self) -> str:
        return "DONE"


DONE = _Done()
"""What the dispatcher returns when the message needed nothing waited for."""


class NewCall:
    """An admitted new INVITE's session start, left for the reader to run (see the module docstring).

    `call_id` is the INVITE's; `start()` starts the session and answers the INVITE itself if the
    start fails (503 at max_calls, 500 for an error). Awaiting it runs `start()`.
    """

    __slots__ = ("call_id", "start")

    def __init__(self, call_id: str, start: Callable[[], Awaitable[None]]) -> None:
        self.call_id = call_id
        self.start = start

    def __await__(self) -> Generator[Any, None, None]:
        return self.start().__await__()


class Starts:
    """The session starts one reader (`label`, for the log) runs in `nursery` (see the module docstring).

    ``limit``: starts run at once before `spawn` waits for the oldest, `MAX_STARTS`.
    """

    __slots__ = ("_nursery", "label", "limit", "running")

    def __init__(self, nursery: trio.Nursery, label: str, *, limit: int = MAX_STARTS) -> None:
        self._nursery = nursery
        self.label = label
        self.limit = limit
        self.running: dict[str, trio.Event] = {}  # Call-ID -> set when its start is done

    async def settle(self, call_id: str) -> None:
        """Return once no start for `call_id` runs (at once when none does: the common case)."""
        done = self.running.get(call_id)
        if done is not None:
            await done.wait()

    async def spawn(self, new_call: NewCall) -> None:
        """Run `new_call` in a task of its own; waits first while ``limit`` starts run, or one of its Call-ID."""
        running = self.running
        while len(running) >= self.limit:
            await next(iter(running.values())).wait()
        await self.settle(new_call.call_id)
        running[new_call.call_id] = trio.Event()
        self._nursery.start_soon(self._run, new_call)

    async def _run(self, new_call: NewCall) -> None:
        try:
            await new_call.start()
        except Exception as exc:  # a bug (the start answers its own errors): it costs its call only
            log.error("%s: starting the session of Call-ID %s failed: %r", self.label, new_call.call_id, exc,
                      exc_info=exc, extra={"peer": self.label, "call_id": new_call.call_id})
        finally:
            self.running.pop(new_call.call_id).set()
