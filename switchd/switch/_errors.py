"""Errors raised by switchd.switch.

* SwitchError
  * NoRoute        no route matches the dialled number (answered 404 Not Found)
  * Overloaded     the switch refuses new work for now; .retry_after says when to try again
                   (answered 503 Service Unavailable with Retry-After)
"""

from __future__ import annotations


class SwitchError(Exception):
    """Base of every error switchd.switch raises on purpose."""


class NoRoute(SwitchError):
    """No route in the routing table matches `number`."""

    def __init__(self, number: str) -> None:
        super().__init__(f"no route for {number!r}")
        self.number = number


class Overloaded(SwitchError):
    """The switch is at capacity; the caller should retry after `retry_after` seconds."""

    def __init__(self, reason: str, *, retry_after: float) -> None:
        super().__init__(f"{reason} (retry after {retry_after:g}s)")
        self.reason = reason
        self.retry_after = retry_after
