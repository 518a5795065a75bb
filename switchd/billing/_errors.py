"""Errors raised by switchd.billing.

* BillingError                 the root: catch this to catch anything billing raises
  * InvalidNumber              a caller / callee string is not a telephone number we can normalise
  * RateDeckError              a rate deck file is wrong; .where names the file and line or element
  * NoRate                     no rate of the plan matches the number (rating returns None instead
                               where an unrated CDR is the right outcome)
  * UnknownCdr                 an update names a CDR that was never opened (a bug in the caller)
  * StoreUnavailable           the database cannot be reached or refused a write; the store spools
  * CdrQuarantined             a step the database cannot take (poison): kept in the dead-letter file
  * NodeClaimed                another process holds this node's name (a second `switchd run`)
  * MigrationError             the schema could not be brought to the head revision
  * InvalidQuery               a query filter or page cursor is malformed (a client's mistake)
  * AccountError               an account operation cannot be done; the message names the account
    * InvalidAccount           a username, realm, caller ID or rate plan that cannot be stored
    * AccountExists            adding an account whose username and realm are taken
    * UnknownAccount           changing or deleting an account that does not exist
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


class CdrQuarantined(BillingError):
    """A CDR step that could not be written (its values or the database refused it).

    It was put in the dead-letter file with the reason, so it is durable but not in the database.
    """


class NodeClaimed(BillingError):
    """Another process holds this node's name; the message is one line naming the holder."""


class MigrationError(BillingError):
    """Alembic could not upgrade the billing schema to head."""


class InvalidQuery(BillingError, ValueError):
    """A malformed query: a bad prefix filter or a page cursor that was not ours."""


class AccountError(BillingError):
    """An account operation that cannot be done; nothing was changed."""


class InvalidAccount(AccountError, ValueError):
    """A username, realm, caller ID or rate plan that an account cannot hold."""


class AccountExists(AccountError):
    """An account with that username already exists in that realm."""


class UnknownAccount(AccountError, LookupError):
    """No account has that username in that realm."""
