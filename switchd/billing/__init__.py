"""switchd.billing: CDRs, rating, rate decks, the BillingStore, queries and export."""

from ._db import alembic_config, current_revision, head_revision, open_engine, upgrade
from ._decks import load_decks, parse_csv, parse_xml, read_deck_file, store_deck
from ._errors import (
    BillingError,
    InvalidNumber,
    MigrationError,
    NoRate,
    RateDeckError,
    StoreUnavailable,
    UnknownCdr,
)
from ._models import Base, Cdr, CdrStatus, Disposition, HangupParty, Rate, RatePlan, cdr_key
from ._numbers import NumberingPlan, normalize_number
from ._rating import RateDeck, Rating, Tariff, billed_seconds, call_cost, rate_call

__all__ = [
    "Base",
    "BillingError",
    "Cdr",
    "CdrStatus",
    "Disposition",
    "HangupParty",
    "InvalidNumber",
    "MigrationError",
    "NoRate",
    "NumberingPlan",
    "Rate",
    "RateDeck",
    "RateDeckError",
    "RatePlan",
    "Rating",
    "StoreUnavailable",
    "Tariff",
    "UnknownCdr",
    "alembic_config",
    "billed_seconds",
    "call_cost",
    "cdr_key",
    "current_revision",
    "head_revision",
    "load_decks",
    "normalize_number",
    "open_engine",
    "parse_csv",
    "parse_xml",
    "rate_call",
    "read_deck_file",
    "store_deck",
    "upgrade",
]
