"""The BillingStore's client API and configuration: what the switch and the daemon use.

Thin wrappers over `call` to the store by registered name ("billing" by default), as Elixir
writes a GenServer's client functions; the server side is in _store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchd.otp import Pid, call

from ._errors import BillingError
from ._numbers import NumberingPlan
from ._queue import QueueStatistics
from ._rating import RateDeck
from ._requests import CdrAnswer, CdrClose, CdrOpen, CdrProgress

NAME = "billing"


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingStoreConfig:
    """How a BillingStore runs.

    ``url``: the SQLAlchemy database URL, "sqlite:///data/switchd.sqlite3".
    ``node``: this node's name, written in every CDR and part of its idempotency key, "switchd".
    ``spool_dir``: where CDR writes wait while the database is down (file `<node>.jsonl`), "data/cdr-spool".
    ``default_plan``: the rate plan of a CdrOpen that names none, "default".
    ``numbering``: how numbers are normalised to E.164, North America's by default.
    ``rate_deck``: a deck file stored (replacing its plan's deck) at start, None.
    ``deck``: ``rate_deck`` already read (the node checks it before it creates anything): stored at
    start instead of reading the file again, None.
    ``deck_currency``: the currency of a CSV ``rate_deck`` (XML names its own), "USD".
    ``migrate``: upgrade the schema to head at start, True.
    ``recover``: close this node's CDRs left open by a previous run, at start, True.
    ``max_batch``: the most ops one transaction takes, 1000.
    ``retry_interval``: seconds between attempts to reach the database while spooling, 1.0.
    ``write_deadline``: seconds a batch may take in the database before it counts as an outage and
    is spooled instead, 0.25.
    ``heartbeat_interval``: seconds between heartbeats of this run (the bound of recovery), 2.0.
    """

    url: str = "sqlite:///data/switchd.sqlite3"
    node: str = "switchd"
    spool_dir: Path = Path("data/cdr-spool")
    default_plan: str = "default"
    numbering: NumberingPlan = field(default_factory=NumberingPlan)
    rate_deck: Path | None = None
    deck: RateDeck | None = None
    deck_currency: str = "USD"
    migrate: bool = True
    recover: bool = True
    max_batch: int = 1000
    retry_interval: float = 1.0
    write_deadline: float = 0.25
    heartbeat_interval: float = 2.0


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What the store is doing, for `switchd status` and the API."""

    connected: bool  # writes go to the database
    spooling: bool  # writes go to the spool file (an outage, or its spool is being replayed)
    spooled_ops: int  # CDR steps spooled since the outage began
    written_ops: int  # CDR steps committed to the database by this store (spool replays included)
    batches: int  # transactions of CDR steps committed by this store
    recovered: int  # CDRs this store closed as recovered at start
    plans: tuple[str, ...]  # rate plans in memory
    quarantined: int = 0  # CDR writes this store put in the dead-letter file
    unknown_closes: int = 0  # closes of CDRs that were never opened (logged, not written)
    queue: QueueStatistics | None = None  # the store's CdrQueue
    db_errors: int = 0  # database writes, probes and replays that failed or overran, since this store started


@dataclass(frozen=True, slots=True)
class ReloadRates:
    """Request: read a deck file and make it its plan's deck (see `reload_rates`)."""

    path: Path
    plan: str | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class SetRates:
    """Request: make `deck` its plan's deck (see `set_rates`)."""

    deck: RateDeck


@dataclass(frozen=True, slots=True)
class _Status:
    pass


async def _request(server: Pid | str, request: object, timeout: float) -> Any:
    result = await call(server, request, timeout=timeout)
    if isinstance(result, BillingError):
        raise result
    return result


async def open_cdr(request: CdrOpen, *, server: Pid | str = NAME, timeout: float = 5.0) -> None:
    """Open the CDR of a call that was set up; returns once it is committed (or spooled)."""
    await _request(server, request, timeout)


async def progress_cdr(request: CdrProgress, *, server: Pid | str = NAME, timeout: float = 5.0) -> None:
    """Record the first progress (180/183) of a call; returns once committed (or spooled)."""
    await _request(server, request, timeout)


async def answer_cdr(request: CdrAnswer, *, server: Pid | str = NAME, timeout: float = 5.0) -> None:
    """Record the answer of a call; returns once committed (or spooled)."""
    await _request(server, request, timeout)


async def close_cdr(request: CdrClose, *, server: Pid | str = NAME, timeout: float = 5.0) -> None:
    """Close and rate the CDR of an ended call; returns once committed (or spooled).

    Raises UnknownCdr if the call was never opened, StoreUnavailable if neither the database nor
    the spool could take it.
    """
    await _request(server, request, timeout)


async def reload_rates(
    path: Path,
    *,
    plan: str | None = None,
    currency: str | None = None,
    server: Pid | str = NAME,
    timeout: float = 60.0,
) -> int:
    """Replace a plan's deck with the deck file `path` (hot reload); returns the tariff count.

    CSV decks load as `plan` (default: the store's default plan) in `currency`; XML names its own.
    Raises RateDeckError (bad file) or StoreUnavailable; either way the old deck stays in force.
    """
    count: int = await _request(server, ReloadRates(path, plan, currency), timeout)
    return count


async def set_rates(deck: RateDeck, *, server: Pid | str = NAME, timeout: float = 60.0) -> int:
    """Replace `deck.plan`'s deck with `deck`; returns the tariff count."""
    count: int = await _request(server, SetRates(deck), timeout)
    return count


async def store_status(*, server: Pid | str = NAME, timeout: float = 5.0) -> StoreStatus:
    """The store's StoreStatus."""
    status: StoreStatus = await _request(server, _Status(), timeout)
    return status
