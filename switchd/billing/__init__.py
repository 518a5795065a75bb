"""switchd.billing: CDRs, rating, rate decks, the BillingStore, queries and export."""

from ._db import alembic_config, current_revision, head_revision, open_engine, upgrade
from ._decks import load_decks, parse_csv, parse_xml, read_deck_file, store_deck
from ._errors import (
    BillingError,
    InvalidQuery,
    InvalidNumber,
    MigrationError,
    NoRate,
    RateDeckError,
    StoreUnavailable,
    UnknownCdr,
)
from ._export import FIELDS as CDR_FIELDS
from ._export import ExportFormat, export_cdrs, iter_cdr_rows
from ._models import Base, Cdr, CdrStatus, Disposition, HangupParty, Rate, RatePlan, cdr_key
from ._numbers import NumberingPlan, normalize_number
from ._queries import (
    CdrFilter,
    CdrPage,
    GroupBy,
    PageCursor,
    SummaryRow,
    cdrs_for_call,
    list_cdrs,
    summarize,
    summary_query,
)
from ._rating import RateDeck, Rating, Tariff, billed_seconds, call_cost, rate_call

__all__ = [
    "Base",
    "BillingError",
    "CDR_FIELDS",
    "Cdr",
    "CdrFilter",
    "CdrPage",
    "CdrStatus",
    "Disposition",
    "ExportFormat",
    "GroupBy",
    "HangupParty",
    "InvalidNumber",
    "InvalidQuery",
    "MigrationError",
    "NoRate",
    "NumberingPlan",
    "PageCursor",
    "Rate",
    "RateDeck",
    "RateDeckError",
    "RatePlan",
    "Rating",
    "StoreUnavailable",
    "SummaryRow",
    "Tariff",
    "UnknownCdr",
    "alembic_config",
    "billed_seconds",
    "call_cost",
    "cdr_key",
    "cdrs_for_call",
    "current_revision",
    "export_cdrs",
    "head_revision",
    "iter_cdr_rows",
    "list_cdrs",
    "load_decks",
    "normalize_number",
    "open_engine",
    "parse_csv",
    "parse_xml",
    "rate_call",
    "read_deck_file",
    "store_deck",
    "summarize",
    "summary_query",
    "upgrade",
]
