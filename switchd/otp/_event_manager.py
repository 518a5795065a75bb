"""EventManager (gen_event): one process, many handlers added and removed at run time.

The manager is a GenServer (kind ``event_manager``) whose state is the ordered table of handlers.
Each event goes to every handler in the order they were added. A handler that raises — from
``handle_event`` or ``handle_call`` — is removed, its ``terminate`` gets the exception, a
``HANDLER_REMOVED`` report goes to the ``switchd.otp`` logger and the report handler, and the
manager and the other handlers go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._call import Caller, _Raised, call, cast
from ._errors import OTPError
from ._gen_server import GenServer, NoReply, Reply
from ._pid import ExitReason, Pid
from ._process import node
from ._reports import Report, ReportKind, emit

log = logging.getLogger("switchd.otp")

S = TypeVar("S")


class EventHandler(Generic[S]):
    """One handler of an EventManager; instantiated with no arguments by ``add_handler``."""

    async def init(self, arg: Any) -> S:
        """The handler's state from add_handler's `arg`; raising means the handler is not added."""
        raise NotImplementedError(f"{type(self).__name__} does not define init()")

    async def handle_event(self, event: Any, state: S) -> S:
        """Handle one notified event; return the new state. Raising removes this handler."""
        return state

    async def handle_call(self, request: Any, state: S) -> tuple[Any, S]:
        """Answer ``call_handler``: return ``(reply, new_state)``. Raising removes this handler."""
        raise NotImplementedError(f"{type(self).__name__} got call {request!r} but defines no handle_call()")

    async def terminate(self, reason: ExitReason, state: S) -> None:
        """Called when the handler is deleted ("normal"), crashed (the exception) or the manager stops."""


@dataclass(frozen=True, slots=True)
class _Add:
    handler_id: str
    handler_cls: type[EventHandler[Any]]
    arg: Any


@dataclass(frozen=True, slots=True)
class _Delete:
    handler_id: str


@dataclass(frozen=True, slots=True)
class _Notify:
    event: Any


@dataclass(frozen=True, slots=True)
class _HandlerCall:
    handler_id: str
    request: Any


@dataclass(frozen=True, slots=True)
class _Which:
    """Ask for the handler ids."""


_Handlers = dict[str, tuple[EventHandler[Any], Any]]


class EventManager(GenServer[_Handlers]):
    """A gen_event manager: ``await nursery.start(partial(EventManager.start_link, name="events"))``."""

    kind = "event_manager"

    async def init(self, *args: Any) -> _Handlers:
        return {}

    async def handle_call(self, request: Any, caller: Caller, state: _Handlers) -> Reply[_Handlers]:
        match request:
            case _Notify(event):
                await self._dispatch(event, state)
                return Reply(None, state)
            case _HandlerCall(handler_id, req):
                entry = state.get(handler_id)
                if entry is None:
                    return Reply(_Raised(OTPError(f"no event handler {handler_id!r} in {self._label()}")), state)
                handler, hstate = entry
                try:
                    answer, hstate = await handler.handle_call(req, hstate)
                except Exception as exc:  # noqa: BLE001 - a handler's fault is removed, never the manager's
                    await self._remove_crashed(state, handler_id, exc)
                    err = OTPError(f"event handler {handler_id!r} crashed on {req!r} and was removed: {exc!r}")
                    err.__cause__ = exc
                    return Reply(_Raised(err), state)
                state[handler_id] = (handler, hstate)
                return Reply(answer, state)
            case _Add(handler_id, handler_cls, arg):
                if handler_id in state:
                    return Reply(_Raised(OTPError(f"event handler {handler_id!r} is already added to "
                                                  f"{self._label()}")), state)
                handler = handler_cls()
                try:
                    hstate = await handler.init(arg)
                except Exception as exc:  # noqa: BLE001 - a failing init: the handler is not added
                    return Reply(_Raised(exc), state)
                state[handler_id] = (handler, hstate)
                return Reply(None, state)
            case _Delete(handler_id):
                entry = state.pop(handler_id, None)
                if entry is None:
                    return Reply(_Raised(OTPError(f"no event handler {handler_id!r} in {self._label()}")), state)
                await self._terminate_handler(handler_id, entry, "normal")
                return Reply(None, state)
            case _Which():
                return Reply(list(state), state)
        raise OTPError(f"event manager: unknown request {request!r}")

    async def handle_cast(self, request: Any, state: _Handlers) -> NoReply[_Handlers]:
        if isinstance(request, _Notify):
            await self._dispatch(request.event, state)
            return NoReply(state)
        raise OTPError(f"event manager: unknown cast {request!r}")

    async def terminate(self, reason: ExitReason, state: _Handlers) -> None:
        for handler_id, entry in list(state.items()):
            await self._terminate_handler(handler_id, entry, reason)

    def format_status(self, state: _Handlers) -> str:
        return f"{len(state)} handlers"

    async def _dispatch(self, event: Any, state: _Handlers) -> None:
        for handler_id, (handler, hstate) in list(state.items()):
            try:
                hstate = await handler.handle_event(event, hstate)
            except Exception as exc:  # noqa: BLE001 - any handler fault removes it
                await self._remove_crashed(state, handler_id, exc)
            else:
                state[handler_id] = (handler, hstate)

    async def _remove_crashed(self, state: _Handlers, handler_id: str, exc: Exception) -> None:
        entry = state.pop(handler_id)
        emit(Report(ReportKind.HANDLER_REMOVED, self._label(), handler_id, None, exc),
             "event manager %s: handler %r raised %r and was removed", self._label(), handler_id, exc)
        await self._terminate_handler(handler_id, entry, exc)

    async def _terminate_handler(self, handler_id: str, entry: tuple[EventHandler[Any], Any],
                                 reason: ExitReason) -> None:
        handler, hstate = entry
        try:
            await handler.terminate(reason, hstate)
        except Exception:
            log.exception("event handler %r: terminate(%r) raised", handler_id, reason,
                          extra={"handler": handler_id})

    def _label(self) -> str:
        proc = node().current()
        return proc.name or str(proc.pid)


async def _manager_call(mgr: Pid | str, request: object, timeout: float) -> Any:
    return await call(mgr, request, timeout=timeout)


async def add_handler(mgr: Pid | str, handler_id: str, handler_cls: type[EventHandler[Any]],
                      arg: Any = None, *, timeout: float = 5.0) -> None:
    """Add a handler under `handler_id` (``handler_cls().init(arg)`` runs in the manager).

    Raises OTPError if the id is taken, or what init raised (the handler is then not added).
    """
    await _manager_call(mgr, _Add(handler_id, handler_cls, arg), timeout)


async def delete_handler(mgr: Pid | str, handler_id: str, *, timeout: float = 5.0) -> None:
    """Remove a handler; its terminate gets ``"normal"``. Raises OTPError for an unknown id."""
    await _manager_call(mgr, _Delete(handler_id), timeout)


def notify(mgr: Pid | str, event: Any) -> None:
    """Hand `event` to every handler, asynchronously; never blocks (like ``cast``)."""
    cast(mgr, _Notify(event))


async def sync_notify(mgr: Pid | str, event: Any, *, timeout: float = 5.0) -> None:
    """Hand `event` to every handler and return once all of them handled it."""
    await _manager_call(mgr, _Notify(event), timeout)


async def call_handler(mgr: Pid | str, handler_id: str, request: Any, *, timeout: float = 5.0) -> Any:
    """Ask one handler: returns its reply. If the handler raises it is removed and OTPError is raised."""
    return await _manager_call(mgr, _HandlerCall(handler_id, request), timeout)


async def which_handlers(mgr: Pid | str, *, timeout: float = 5.0) -> list[str]:
    """The ids of the manager's handlers, in the order they were added."""
    result: list[str] = await _manager_call(mgr, _Which(), timeout)
    return result


