"""The requests the switch sends the BillingStore, one frozen dataclass per step of a call.

A call attempt is named by (A-leg Call-ID, attempt); the store adds its node and hashes the three
into the CDR's idempotency key (`cdr_key`). The steps, in order:

    CdrOpen      INVITE accepted: who called whom, when           → a CDR with status open
    CdrProgress  first 180/183 from the B-leg (optional)          → progress_at
    CdrAnswer    200 OK from the B-leg (optional)                 → answer_at
    CdrClose     the call is over: how, when, by whom             → rated, status closed

Route, gateway and B-leg fields may come with any later step; a later non-None value replaces an
earlier one, a None leaves it. Every time is timezone-aware (UTC is stored, ms precision).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._models import Disposition, HangupParty


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} {value.isoformat()!r} is naive: billing times must be timezone-aware")


def _attempt(value: int) -> None:
    if value < 1:
        raise ValueError(f"attempt {value} must be ≥ 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrOpen:
    """The call was set up (INVITE accepted): open its CDR. Committed before the reply."""

    call_id: str  # A-leg Call-ID
    caller: str  # as received (From URI or number); normalised to E.164 by the store
    callee: str  # as dialled (Request-URI or number); normalised to E.164 by the store
    setup_at: datetime
    attempt: int = 1  # a second INVITE with the same Call-ID is attempt 2
    account: str | None = None  # who pays
    a_from_tag: str | None = None
    a_to_tag: str | None = None
    rate_plan: str | None = None  # None: the store's default plan

    def __post_init__(self) -> None:
        _aware("setup_at", self.setup_at)
        _attempt(self.attempt)
        if not self.call_id:
            raise ValueError("call_id is empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrProgress:
    """The B-leg reported progress (180/183): the first one sets progress_at."""

    call_id: str
    at: datetime
    attempt: int = 1
    b_call_id: str | None = None
    gateway: str | None = None
    route_id: str | None = None
    route_prefix: str | None = None
    b_attempts: int | None = None  # B-legs tried so far (failover)

    def __post_init__(self) -> None:
        _aware("at", self.at)
        _attempt(self.attempt)


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrAnswer:
    """The B-leg answered (200 OK): billable time starts at `at`."""

    call_id: str
    at: datetime
    attempt: int = 1
    a_to_tag: str | None = None
    b_call_id: str | None = None
    gateway: str | None = None
    route_id: str | None = None
    route_prefix: str | None = None
    b_attempts: int | None = None

    def __post_init__(self) -> None:
        _aware("at", self.at)
        _attempt(self.attempt)


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrClose:
    """The call is over: close, rate and commit its CDR.

    Billable time is answer → end when an answer time is known (from CdrAnswer or `answer_at`
    here); otherwise the call was not answered, whatever `disposition` says.
    """

    call_id: str
    end_at: datetime
    disposition: Disposition
    attempt: int = 1
    sip_code: int | None = None  # final status sent to the caller (200 for an answered call)
    sip_reason: str | None = None
    hangup_cause: str | None = None  # e.g. "bye", "cancel", "timeout", "crash"
    hangup_by: HangupParty | None = None
    answer_at: datetime | None = None  # if no CdrAnswer was sent
    b_call_id: str | None = None
    gateway: str | None = None
    route_id: str | None = None
    route_prefix: str | None = None
    b_attempts: int | None = None
    reinvites: int | None = None  # re-INVITEs and UPDATEs relayed in the call, either way
    hold_ms: int | None = None  # time on hold (SDP a=sendonly/inactive); not billed differently

    def __post_init__(self) -> None:
        _aware("end_at", self.end_at)
        _aware("answer_at", self.answer_at)
        _attempt(self.attempt)
        if self.sip_code is not None and not 100 <= self.sip_code <= 699:
            raise ValueError(f"sip_code {self.sip_code} is not a SIP status code")
        for name in ("reinvites", "hold_ms"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 2**31:
                raise ValueError(f"{name} {value} is not a count in 0..2**31-1")


def disposition_for(status: int) -> Disposition:
    """The disposition of a call that ended with final SIP `status` towards the caller."""
    if 200 <= status < 300:
        return Disposition.ANSWERED
    match status:
        case 486 | 600:
            return Disposition.BUSY
        case 408 | 480:
            return Disposition.NO_ANSWER
        case 487:
            return Disposition.CANCELLED
        case 502 | 503 | 504:
            return Disposition.CONGESTION
        case 403 | 603:
            return Disposition.REJECTED
        case 404 | 484 | 604:
            return Disposition.NO_ROUTE
    return Disposition.FAILED
