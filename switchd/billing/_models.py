"""The billing schema: CDRs, rate plans and their rates (SQLAlchemy 2 typed ORM).

The tables are created and changed only by the Alembic migrations in `migrations/versions/`;
nothing here calls `create_all`. A test checks that the migrations and these models agree.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ._types import Money, UtcDateTime

# pk_/fk_/uq_/ix_/ck_: stable constraint names, so Alembic can find them again (and SQLite batch
# mode can recreate them).
CONSTRAINT_NAMES = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class Disposition(StrEnum):
    """How a call attempt ended, as a billing clerk reads it."""

    ANSWERED = "ANSWERED"  # 2xx: the callee answered; the only billable outcome by default
    NO_ANSWER = "NO_ANSWER"  # 408 / 480: rang out or the callee is unavailable
    BUSY = "BUSY"  # 486 / 600: busy here, busy everywhere
    CANCELLED = "CANCELLED"  # the caller gave up before an answer (CANCEL → 487)
    CONGESTION = "CONGESTION"  # 503 / 502 / 504 or our own overload: no capacity on the path
    REJECTED = "REJECTED"  # 403 / 603: refused by policy (auth, decline)
    NO_ROUTE = "NO_ROUTE"  # 404 / 484 / 604: no route or the number does not exist
    FAILED = "FAILED"  # anything else, including a crashed call session


class CdrStatus(StrEnum):
    """Where a CDR is in its life."""

    OPEN = "open"  # the call is in progress
    CLOSED = "closed"  # the call ended and the record was closed and rated
    RECOVERED = "recovered"  # the node died with the call open; closed at the next start


class HangupParty(StrEnum):
    """Who ended the call."""

    CALLER = "caller"
    CALLEE = "callee"
    SWITCH = "switch"


def _enum(cls: type[StrEnum]) -> SAEnum:
    # VARCHAR + the values, not a native PostgreSQL ENUM: adding a member needs no type migration.
    return SAEnum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


def cdr_key(node: str, call_id: str, attempt: int) -> str:
    """The idempotency key of a call attempt: SHA-256 over node, A-leg Call-ID and attempt.

    Every write of one attempt carries the same key, so a replayed write finds its record instead
    of making a second one.
    """
    material = f"{node}\x00{call_id}\x00{attempt}".encode()
    return hashlib.sha256(material).hexdigest()


class Base(DeclarativeBase):
    """Declarative base: naming convention for constraints, UTC times, exact money."""

    metadata = MetaData(naming_convention=CONSTRAINT_NAMES)
    type_annotation_map = {Decimal: Money(), datetime: UtcDateTime()}  # noqa: RUF012 (SQLAlchemy's API)


class Cdr(Base):
    """One call detail record: one call attempt through one node."""

    __tablename__ = "cdrs"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # cdr_key(node, call_id, attempt)
    node: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(255))  # A-leg Call-ID
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    a_from_tag: Mapped[str | None] = mapped_column(String(128))
    a_to_tag: Mapped[str | None] = mapped_column(String(128))  # our tag towards the caller
    b_call_id: Mapped[str | None] = mapped_column(String(255))  # B-leg Call-ID (last attempt)
    account: Mapped[str | None] = mapped_column(String(64))
    caller_raw: Mapped[str] = mapped_column(String(255))  # as received
    caller: Mapped[str | None] = mapped_column(String(16))  # E.164, NULL if not a number
    callee_raw: Mapped[str] = mapped_column(String(255))  # as dialled
    callee: Mapped[str | None] = mapped_column(String(16))  # E.164, NULL if not a number
    route_id: Mapped[str | None] = mapped_column(String(64))
    route_prefix: Mapped[str | None] = mapped_column(String(32))
    gateway: Mapped[str | None] = mapped_column(String(255))
    b_attempts: Mapped[int] = mapped_column(Integer, default=0)  # B-legs tried (failover)
    setup_at: Mapped[datetime]  # INVITE accepted
    progress_at: Mapped[datetime | None]  # first 180/183
    answer_at: Mapped[datetime | None]  # 200 OK; NULL: never answered
    end_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)  # setup → end
    billable_ms: Mapped[int | None] = mapped_column(BigInteger)  # answer → end
    disposition: Mapped[Disposition | None] = mapped_column(_enum(Disposition))
    sip_code: Mapped[int | None] = mapped_column(Integer)  # final SIP status to the caller
    sip_reason: Mapped[str | None] = mapped_column(String(255))
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    hangup_by: Mapped[HangupParty | None] = mapped_column(_enum(HangupParty))
    rate_plan: Mapped[str] = mapped_column(String(64))
    rated: Mapped[bool] = mapped_column(Boolean, default=False)  # False: no rate matched (yet)
    rate_prefix: Mapped[str | None] = mapped_column(String(32))
    rate_per_minute: Mapped[Decimal | None]
    rate_connect_fee: Mapped[Decimal | None]
    rate_first_increment: Mapped[int | None] = mapped_column(Integer)
    rate_next_increment: Mapped[int | None] = mapped_column(Integer)
    billed_seconds: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[CdrStatus] = mapped_column(_enum(CdrStatus), default=CdrStatus.OPEN)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        # keyset pagination and time-range scans: (setup_at, id) is the listing order
        Index("ix_cdrs_setup_at_id", "setup_at", "id"),
        Index("ix_cdrs_call_id", "call_id"),
        Index("ix_cdrs_caller", "caller"),
        Index("ix_cdrs_callee", "callee"),
        Index("ix_cdrs_account_setup_at", "account", "setup_at"),
        Index("ix_cdrs_disposition_setup_at", "disposition", "setup_at"),
        # recovery at start: the open CDRs of this node
        Index("ix_cdrs_node_status", "node", "status"),
    )


class CdrRollup(Base):
    """Running totals of finished CDRs per UTC day, account, rate prefix, disposition and currency.

    Kept by the store in the same transaction that closes each CDR, so billing summaries read a
    few thousand rows instead of scanning millions of CDRs. '' stands for "none" in the key
    columns (NULL cannot be part of a primary key). `rebuild_rollups` recomputes it from cdrs.
    """

    __tablename__ = "cdr_rollups"

    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # 'YYYY-MM-DD', UTC day of setup
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    rate_prefix: Mapped[str] = mapped_column(String(32), primary_key=True)  # '': unrated
    disposition: Mapped[str] = mapped_column(String(16), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)  # '': unrated
    calls: Mapped[int] = mapped_column(BigInteger)
    answered: Mapped[int] = mapped_column(BigInteger)
    billable_ms: Mapped[int] = mapped_column(BigInteger)
    billed_seconds: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[Decimal]


class RatePlan(Base):
    """A named rate deck (a customer tariff or a carrier's price list)."""

    __tablename__ = "rate_plans"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    # True: an unanswered call is charged its rate's connect fee (some carriers bill attempts)
    bill_unanswered: Mapped[bool] = mapped_column(Boolean, default=False)
    loaded_at: Mapped[datetime]
    rates: Mapped[list[Rate]] = relationship(
        back_populates="plan", cascade="all, delete-orphan", passive_deletes=True
    )


class Rate(Base):
    """One line of a deck: the price of calls to numbers starting with `prefix`."""

    __tablename__ = "rates"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("rate_plans.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(32))  # E.164 digits without '+'
    description: Mapped[str] = mapped_column(String(255), default="")
    price_per_minute: Mapped[Decimal]
    connect_fee: Mapped[Decimal]
    first_increment: Mapped[int] = mapped_column(Integer)  # seconds
    next_increment: Mapped[int] = mapped_column(Integer)  # seconds
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[datetime | None]  # NULL: since always
    valid_to: Mapped[datetime | None]  # NULL: until further notice; exclusive
    plan: Mapped[RatePlan] = relationship(back_populates="rates")

    __table_args__ = (
        UniqueConstraint("plan_id", "prefix", "valid_from", name="uq_rates_plan_id_prefix_valid_from"),
    )
