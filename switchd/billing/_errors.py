"""Errors raised by switchd.billing.

* BillingError                 the root: catch this to catch anything billing raises
  * InvalidNumber              a caller / callee string is not a telephone number we can normalise
  * RateDeckError              a rate deck file is wrong; .where names the file and line or element
  * NoRate                     no rate of the plan matches the number (rating returns None instead
                               where an unrated CDR is the right outcome)
  * UnknownCdr                 an update names a CDR that was never opened (a bug in the caller)
  * StoreUnavailable           the database cannot be reached or refused a write; the store spools
  * MigrationError             the schema could not be brought to the head revision
  * InvalidQuery               a query filter or page cursor is malformed (a client's mistake)
"""

from __future__ import annotations


class BillingError(Exception):
    """Base class of every error raised by switchd.billing."""


class InvalidNumber(BillingError, ValueError):
    """A caller or callee string that cannot be normalised to E.164."""


class RateDeckError(BillingError, ValueError):
    """A rate deck that cannot be loaded; nothing was changed.

    `where` is "file:line" for CSV and "file:line <rate …>" for XML, so an operator can go
    straight to the bad spot.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class NoRate(BillingError, LookupError):
    """No rate matches a number in a plan."""


class UnknownCdr(BillingError, LookupError):
    """A progress, answer or close names a CDR key that was never opened."""


class StoreUnavailable(BillingError):
    """The billing database is unreachable or failed a write (wrapped from SQLAlchemy)."""


class MigrationError(BillingError):
    """Alembic could not upgrade the billing schema to head."""


class InvalidQuery(BillingError, ValueError):
    """A malformed query: a bad prefix filter or a page cursor that was not ours."""
