"""Errors raised by switchd.otp.

* OTPError                  base of every error this layer raises on purpose
  * CallTimeout             a call got no reply within its timeout (the server may still be running)
  * NoProcess               a name is not registered, or a pid is not alive (or no current process)
  * ServerExited            the server exited before replying; ``.reason`` is its exit reason
  * AlreadyRegistered       a name is taken by a live process, or the process already has a name
  * MaxChildren             a DynamicSupervisor is at ``max_children``
  * ReceiveTimeout          ``receive(timeout=...)`` found no (matching) message in time
  * SupervisorGaveUp        a supervisor exceeded its restart intensity and shut its children down
  * NotABehaviour           a sys operation (``stop``, ``get_state`` ...) was sent to a plain process
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._pid import ExitReason


class OTPError(Exception):
    """Base class of every error switchd.otp raises on purpose."""


class CallTimeout(OTPError):
    """A call got no reply within its timeout; a reply that arrives later is dropped."""


class NoProcess(OTPError):
    """The destination is not a registered name, or the pid is no longer alive."""


class ServerExited(OTPError):
    """The server exited before it replied; ``reason`` is its exit reason (an exception when it crashed)."""

    def __init__(self, reason: ExitReason, message: str | None = None) -> None:
        self.reason: ExitReason = reason
        super().__init__(message or f"server exited: {reason!r}")


class AlreadyRegistered(OTPError):
    """The name is already registered to a live process (or the process already has a name)."""


class MaxChildren(OTPError):
    """The DynamicSupervisor already runs ``max_children`` children."""


class ReceiveTimeout(OTPError):
    """No (matching) message arrived within the receive timeout."""


class SupervisorGaveUp(OTPError):
    """A supervisor exceeded its restart intensity; it shut its children down and exited with this."""

    def __init__(self, supervisor: str, child_id: str, reason: ExitReason, max_restarts: int,
                 max_seconds: float) -> None:
        self.supervisor = supervisor
        self.child_id = child_id
        self.reason: ExitReason = reason
        super().__init__(
            f"supervisor {supervisor} gave up: child {child_id!r} exited with {reason!r}, "
            f"more than {max_restarts} restarts in {max_seconds:g}s"
        )


class NotABehaviour(OTPError):
    """A system message (stop, get_state, suspend ...) was sent to a process that is not a behaviour."""
