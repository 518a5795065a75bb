"""Errors raised by switchd.switch.

* SwitchError
  * NoRoute        no route matches the dialled number (answered 404 Not Found)
  * UserUnavailable  a user of ours has no contact to call now (answered 480 Temporarily Unavailable)
  * AccountsUnavailable  the accounts could not be read from the database (a reload failed)
  * RoutingFailed  the routing policy raised for this lookup (a bug in it); the Router goes on
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


class UserUnavailable(SwitchError):
    """`user` is an account of ours with no registered contact to call now."""

    def __init__(self, user: str) -> None:
        super().__init__(f"user {user!r} has no registered contact")
        self.user = user


class AccountsUnavailable(SwitchError):
    """The registrar could not read the accounts from the database; it keeps the ones it had."""


class RoutingFailed(SwitchError):
    """The Router's policy raised while ordering the routes for `number`; other lookups are unaffected."""

    def __init__(self, number: str, error: BaseException) -> None:
        super().__init__(f"routing policy failed for {number!r}: {error!r}")
        self.number = number
        self.error = error


class Overloaded(SwitchError):
    """The switch is at capacity; the caller should retry after `retry_after` seconds."""

    def __init__(self, reason: str, *, retry_after: float) -> None:
        super().__init__(f"{reason} (retry after {retry_after:g}s)")
        self.reason = reason
        self.retry_after = retry_after
