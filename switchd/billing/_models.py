"""The database schema: CDRs, rate plans and their rates, accounts and their registered contacts.

SQLAlchemy 2 typed ORM. Accounts and bindings live here too because they share the database, its
migrations and its engine settings; billing reads an account only as the `account` and
`rate_plan` a call's CDR records.

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
    OPERATOR = "operator"  # ended from outside the call: the HTTP API's DELETE /calls/{call_id}


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
    reinvites: Mapped[int | None] = mapped_column(Integer)  # re-INVITEs/UPDATEs relayed; NULL: not known
    hold_ms: Mapped[int | None] = mapped_column(BigInteger)  # time on hold; NULL: not known
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


class NodeRun(Base):
    """One run of a node (a daemon start) and its heartbeat: the bound of recovery after a crash.

    The store writes `last_beat` every `heartbeat_interval` through its write pipeline (spooled
    during an outage like any CDR write). A CDR a crashed run left open is recovered as ending at
    that run's last beat (see docs/billing.md).
    """

    __tablename__ = "node_runs"

    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_started: Mapped[datetime] = mapped_column(primary_key=True)  # the run's first store start
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    last_beat: Mapped[datetime]


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


class Account(Base):
    """A subscriber who may register and call: digest secrets (never the password), caller ID, rate plan.

    The password itself is never stored: only HA1 = H(username:realm:password) for MD5 and for
    SHA-256 (RFC 8760), which is all a digest server needs. Whoever reads this table can still
    impersonate the account in its realm (an HA1 is as good as the password there): keep the
    database private. Changing the realm needs the password again.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))  # the digest username and the user part of its AOR
    realm: Mapped[str] = mapped_column(String(128))
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)  # False: refused as if unknown
    caller_id: Mapped[str | None] = mapped_column(String(64))  # the number its calls present; NULL: its own From
    rate_plan: Mapped[str | None] = mapped_column(String(64))  # the plan its calls are rated with; NULL: default
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("username", "realm", name="uq_accounts_username_realm"),)


class Binding(Base):
    """One registered contact of an account on one node (RFC 3261 §10): where its calls go, until when.

    The registrar of `node` keeps them in memory and writes them here as they change, so a
    restarted node still reaches its phones; an expired row is never used and is deleted.
    """

    __tablename__ = "bindings"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(64))
    realm: Mapped[str] = mapped_column(String(128))
    contact: Mapped[str] = mapped_column(String(1024))  # the Contact URI as registered
    q: Mapped[int] = mapped_column(Integer)  # the q-value in thousandths: 0..1000; 1000 when none was given
    expires_at: Mapped[datetime]
    call_id: Mapped[str] = mapped_column(String(255))  # of the REGISTER: orders refreshes (§10.3 step 7)
    cseq: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(8))  # "tcp", "udp" ...: how calls reach the contact
    source: Mapped[str] = mapped_column(String(64))  # the address the REGISTER came from
    registered_at: Mapped[datetime]

    __table_args__ = (Index("ix_bindings_node_username", "node", "username"),)
