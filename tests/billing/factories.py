"""Test data: store configurations, and CDR rows written straight into a migrated database."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from switchd.billing import BillingStoreConfig, Cdr, CdrStatus, Disposition, cdr_key, rebuild_rollups

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def store_config(url: str, tmp_path: Path, **options: Any) -> BillingStoreConfig:
    """A store on `url` as node n1, spooling under `tmp_path`, with the sample deck; `options` override."""
    defaults: dict[str, Any] = {
        "url": url,
        "node": "n1",
        "spool_dir": tmp_path / "spool",
        "rate_deck": CONFIG_DIR / "rates.csv",
    }
    return BillingStoreConfig(**{**defaults, **options})


def cdr_row(n: int, **fields: Any) -> dict[str, Any]:
    """A closed, answered, rated CDR #n (60 s, 1 min billed at 0.01), overridden by `fields`."""
    setup = fields.pop("setup_at", T0 + timedelta(seconds=n))
    row: dict[str, Any] = {
        "key": cdr_key("n1", f"call-{n}", 1),
        "node": "n1",
        "call_id": f"call-{n}",
        "attempt": 1,
        "account": "acme",
        "caller_raw": "4155550100",
        "caller": "+14155550100",
        "callee_raw": "011442071234567",
        "callee": "+442071234567",
        "b_attempts": 1,
        "setup_at": setup,
        "answer_at": setup + timedelta(seconds=2),
        "end_at": setup + timedelta(seconds=62),
        "duration_ms": 62_000,
        "billable_ms": 60_000,
        "disposition": Disposition.ANSWERED,
        "sip_code": 200,
        "sip_reason": "OK",
        "rate_plan": "default",
        "rated": True,
        "rate_prefix": "44",
        "rate_per_minute": Decimal("0.010000"),
        "rate_connect_fee": Decimal(0),
        "rate_first_increment": 60,
        "rate_next_increment": 60,
        "billed_seconds": 60,
        "cost": Decimal("0.010000"),
        "currency": "USD",
        "status": CdrStatus.CLOSED,
        "created_at": setup,
        "updated_at": setup,
    }
    row.update(fields)
    return row


def insert_cdrs(engine: Engine, rows: Iterable[dict[str, Any]]) -> None:
    """Insert `rows` in one transaction (executemany) and rebuild the rollups, as after an import."""
    with Session(engine) as session, session.begin():
        session.execute(insert(Cdr), list(rows))
        rebuild_rollups(session)
