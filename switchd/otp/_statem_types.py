"""The vocabulary of StateMachine: event types, transition results, and actions.

Events a ``handle_event`` sees: ``Call(caller)``, ``EventType.CAST``/``INFO``/``STATE_TIMEOUT``/
``EVENT_TIMEOUT``/``INTERNAL`` (also exported bare: ``CAST`` ...), ``Enter(old_state)``, and a
fired ``GenericTimeout`` action itself. Results: ``NextState``, ``KeepState`` (and ``Stop``).
Actions: ``ReplyAction``, ``Postpone``, ``NextEvent``, ``StateTimeout``, ``EventTimeout``,
``GenericTimeout``. What each does is in ``_state_machine``'s docstring and docs/otp.md.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

from ._call import Caller

St = TypeVar("St")
D = TypeVar("D")


class EventType(enum.Enum):
    """The event types that carry no data of their own (match them as ``EventType.CAST``)."""

    CAST = "cast"
    INFO = "info"
    STATE_TIMEOUT = "state_timeout"
    EVENT_TIMEOUT = "event_timeout"
    INTERNAL = "internal"


CAST = EventType.CAST
INFO = EventType.INFO
STATE_TIMEOUT = EventType.STATE_TIMEOUT
EVENT_TIMEOUT = EventType.EVENT_TIMEOUT
INTERNAL = EventType.INTERNAL


@dataclass(frozen=True, slots=True)
class Call:
    """Event type of a ``call``: answer ``caller`` with a ``ReplyAction`` or ``caller.reply``."""

    caller: Caller


@dataclass(frozen=True, slots=True)
class Enter:
    """Event type of a state enter call (``state_enter = True``); content is None."""

    old_state: Any


@dataclass(frozen=True, slots=True)
class ReplyAction:
    """Action: answer `caller` with `value`."""

    caller: Caller
    value: Any


@dataclass(frozen=True, slots=True)
class Postpone:
    """Action: keep the current event and re-deliver it after the next state change."""


@dataclass(frozen=True, slots=True)
class NextEvent:
    """Action: handle (`type`, `content`) next, before any queued event (``type`` is usually INTERNAL)."""

    type: Any
    content: Any = None


@dataclass(frozen=True, slots=True)
class StateTimeout:
    """Action: after `delay` s in this state, the event (STATE_TIMEOUT, `content`); None cancels."""

    delay: float | None
    content: Any = None


@dataclass(frozen=True, slots=True)
class EventTimeout:
    """Action: after `delay` s without any event, the event (EVENT_TIMEOUT, `content`); None cancels."""

    delay: float | None
    content: Any = None


@dataclass(frozen=True, slots=True)
class GenericTimeout:
    """Action: after `delay` s, the event (this GenericTimeout, `content`); match ``GenericTimeout(name)``.

    With `absolute`, `delay` is a deadline on trio's clock (OTP's ``{abs, true}``); setting again the
    same timeout (equal action, same deadline) while it is armed leaves it as it is, so a machine
    that re-arms its timeouts after every event pays nothing when they did not change.
    """

    name: str
    delay: float | None = None
    content: Any = None
    absolute: bool = False


Action: TypeAlias = ReplyAction | Postpone | NextEvent | StateTimeout | EventTimeout | GenericTimeout
Event: TypeAlias = Call | Enter | EventType | GenericTimeout | Any  # NextEvent may insert any type


@dataclass(frozen=True, slots=True)
class NextState(Generic[St, D]):
    """Go to `state` with `data`, then run `actions`. Going to the same state is no state change."""

    state: St
    data: D
    actions: Sequence[Action] = ()


@dataclass(frozen=True, slots=True)
class KeepState(Generic[D]):
    """Stay in the current state with `data`, then run `actions`."""

    data: D
    actions: Sequence[Action] = ()
