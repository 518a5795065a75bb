"""Admission: the drain flag and the 503 Retry-After a refusal carries."""

from __future__ import annotations

import pytest

from switchd.otp import MaxChildren
from switchd.switch import Overloaded
from switchd.switch._admission import Admission, retry_after_header


def test_a_fresh_node_admits_calls_and_counts_them() -> None:
    admission = Admission()
    admission.admit()
    admission.admit()
    assert admission.statistics().admitted == 2
    assert not admission.draining


def test_once_draining_every_new_call_is_refused_with_the_drain_retry_after() -> None:
    admission = Admission(drain_retry_after=12.0)
    admission.begin_drain()
    admission.begin_drain()  # idempotent
    with pytest.raises(Overloaded) as caught:
        admission.admit()
    assert caught.value.retry_after == 12.0
    assert admission.statistics().refused_draining == 1


def test_a_full_calls_supervisor_turns_into_overloaded_and_uncounts_the_admission() -> None:
    admission = Admission(full_retry_after=2.0)
    admission.admit()
    overloaded = admission.full(MaxChildren("calls already runs 1 children"))
    assert overloaded.retry_after == 2.0
    assert "calls already runs 1" in str(overloaded)
    stats = admission.statistics()
    assert (stats.admitted, stats.refused_full) == (0, 1)


@pytest.mark.parametrize(("seconds", "header"), [(0.0, "1"), (0.2, "1"), (5.0, "5"), (29.1, "30")])
def test_retry_after_is_whole_seconds_and_at_least_one(seconds: float, header: str) -> None:
    assert retry_after_header(Overloaded("x", retry_after=seconds)) == ("Retry-After", header)


def test_a_negative_retry_after_is_refused() -> None:
    with pytest.raises(ValueError, match="drain_retry_after"):
        Admission(drain_retry_after=-1)
