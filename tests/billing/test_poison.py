"""Poison: a step the database cannot take is quarantined, logged once, and never stalls the rest.

Neither a value that cannot become a CDR write (not valid Unicode), nor one the database refuses
(a constraint, a number out of range), nor one that was in flight at two crashes of the store may
cost the node its billing: each goes to `<node>.dead.jsonl` with the reason, and the steps around
it are committed.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from switchd.billing import (
    BillingStore,
    Cdr,
    CdrClose,
    CdrOpen,
    CdrQuarantined,
    CdrQueue,
    CdrStatus,
    CdrStep,
    Disposition,
    billing_child_spec,
    open_cdr,
    open_engine,
    store_status,
    upgrade,
)
from switchd.otp import Supervisor, stop, whereis

from .conftest import Hang
from .factories import eventually, store_config, until, until_connected

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOT_UTF8 = "a-\udcff-b@host"  # what a Call-ID with the byte 0xFF becomes when decoded with surrogateescape

_SQLITE_TRIGGER = """
CREATE TRIGGER refuse_poison BEFORE INSERT ON cdrs WHEN NEW.call_id LIKE 'poison%'
BEGIN SELECT RAISE(ABORT, 'poison call refused'); END
"""
_PG_TRIGGER = [
    """
    CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
    BEGIN
        IF NEW.call_id LIKE 'poison%' THEN
            RAISE EXCEPTION 'poison call refused' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    "CREATE TRIGGER refuse_poison BEFORE INSERT ON cdrs FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
]


def _refuse_poison(url: str) -> None:
    """Make the database itself refuse CDRs whose Call-ID starts with 'poison' (an IntegrityError)."""
    engine = open_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        for statement in [_SQLITE_TRIGGER] if engine.dialect.name == "sqlite" else _PG_TRIGGER:
            conn.execute(text(statement))
    engine.dispose()


def _open(call_id: str, **fields: Any) -> CdrOpen:
    return CdrOpen(call_id=call_id, caller="4155550100", callee="+442071234567", setup_at=T0, **fields)


def _close(call_id: str) -> CdrClose:
    return CdrClose(call_id=call_id, end_at=T0 + timedelta(seconds=5), disposition=Disposition.NO_ANSWER)


def _call_ids(url: str) -> dict[str, CdrStatus]:
    engine = open_engine(url)
    with Session(engine) as session:
        rows = {c.call_id: c.status for c in session.scalars(select(Cdr))}
    engine.dispose()
    return rows


def _dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "spool" / "n1.dead.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]


async def test_a_call_id_that_is_not_utf8_is_quarantined_and_the_store_serves_on(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(
            partial(BillingStore.start_link, store_config(db_url, tmp_path), name="billing")
        )
        with caplog.at_level(logging.ERROR, logger="switchd.billing"):
            for _ in range(2):  # an INVITE and its retransmission: the store survives both
                with pytest.raises(CdrQuarantined, match="UnicodeEncodeError"):
                    await open_cdr(_open(NOT_UTF8))
        await open_cdr(_open("fine"))
        assert whereis("billing") == pid  # no crash, no restart
        status = await store_status()
        assert (status.quarantined, status.connected) == (2, True)
        nursery.cancel_scope.cancel()
    assert _call_ids(db_url) == {"fine": CdrStatus.OPEN}
    first, _ = _dead_letters(tmp_path)
    assert first["step"]["call_id"] == NOT_UTF8 and first["step"]["type"] == "CdrOpen"  # kept exactly
    assert "surrogates not allowed" in first["reason"]
    assert len([r for r in caplog.records if "quarantined" in r.getMessage()]) == 2  # once per step


async def test_an_op_the_database_refuses_is_quarantined_and_the_rest_of_its_batch_commits(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _refuse_poison(db_url)
    queue = CdrQueue()
    config = store_config(db_url, tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, config, queue, name="billing"))
        steps: list[CdrStep] = [_open("a"), _open("poison-1"), _open("b"), _open("big", attempt=2**70)]
        steps += [_open("c"), _close("a"), _close("poison-1"), _close("c")]
        tickets = [queue.submit(step) for step in steps]  # one batch: submitted before the store runs
        with caplog.at_level(logging.ERROR, logger="switchd.billing"):
            status = await until(
                lambda s: s.queue is not None and s.queue.durable_upto == tickets[-1], "writes"
            )
        assert (status.quarantined, status.unknown_closes, status.connected) == (2, 1, True)
        assert status.queue is not None and status.queue.quarantined == 2
        nursery.cancel_scope.cancel()
    assert _call_ids(db_url) == {"a": CdrStatus.CLOSED, "b": CdrStatus.OPEN, "c": CdrStatus.CLOSED}
    dead = _dead_letters(tmp_path)
    assert [d["op"]["v"]["call_id"] for d in dead] == ["poison-1", "big"]
    assert "poison call refused" in dead[0]["reason"]
    assert "CDR close not written" in caplog.text  # the poison call's close: reported, counted


async def _crash_in_flight(hang: Hang, *, then_let_writes_pass: bool = False) -> None:
    """Wait until a write hangs in the store's database thread, then crash the store.

    With `then_let_writes_pass`, writes after that one are no longer held (the held one stays).
    """
    await trio.to_thread.run_sync(hang.entered.wait, 10)
    hang.entered.clear()
    hang.armed = not then_let_writes_pass
    first = whereis("billing")
    await stop("billing", RuntimeError("injected crash with a write in flight"))
    await eventually(lambda: whereis("billing") not in (None, first), "the supervisor's restart")


async def test_a_crash_keeps_the_queue_and_a_step_in_flight_at_two_crashes_is_quarantined_unwritten(
    tmp_path: Path, hang: Hang
) -> None:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    config = store_config(url, tmp_path, write_deadline=60.0, heartbeat_interval=3600.0)
    queue = CdrQueue()
    hang.armed = hang.fail = True  # the abandoned writes fail when let go: they never land
    async with trio.open_nursery() as nursery:
        await nursery.start(Supervisor.start_link, [billing_child_spec(config, queue=queue)])
        tickets = [queue.submit(_open(f"c{n}")) for n in range(1, 4)]  # one batch, which hangs
        await _crash_in_flight(hang)
        assert queue.statistics().depth == 3  # nothing lost with the store
        # the restarted store writes its suspects one at a time: c1 hangs alone, and it crashes again;
        # the third store quarantines c1 unwritten, then writes c2 and c3, each alone
        await _crash_in_flight(hang, then_let_writes_pass=True)
        status = await until(lambda s: s.queue is not None and s.queue.durable_upto == tickets[-1], "writes")
        assert (status.quarantined, status.written_ops, status.batches) == (1, 2, 2)
        nursery.cancel_scope.cancel()
    assert _call_ids(url) == {"c2": CdrStatus.OPEN, "c3": CdrStatus.OPEN}
    [dead] = _dead_letters(tmp_path)
    assert dead["step"]["call_id"] == "c1" and "in flight at 2 crashes" in dead["reason"]


async def test_a_poison_op_in_the_spool_is_quarantined_and_never_blocks_the_replay(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    directory = tmp_path / "db"
    url = f"sqlite:///{directory / 'billing.db'}"
    config = store_config(url, tmp_path, retry_interval=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(BillingStore.start_link, config, name="billing"))
        assert (await store_status()).spooling  # no database yet: everything is spooled
        for call_id in ("a", "poison-1", "b"):
            await open_cdr(_open(call_id))
        directory.mkdir()
        _refuse_poison(url)  # the database that appears refuses one of the spooled ops
        mock_clock.jump(1.0)
        status = await until_connected()
        assert status.quarantined == 1
        await until(lambda s: not (tmp_path / "spool" / "n1.jsonl").exists(), "removing the spool")
        nursery.cancel_scope.cancel()
    assert _call_ids(url) == {"a": CdrStatus.OPEN, "b": CdrStatus.OPEN}
    [dead] = _dead_letters(tmp_path)
    assert dead["op"]["v"]["call_id"] == "poison-1" and "poison call refused" in dead["reason"]


async def test_a_from_tag_that_is_not_utf8_is_quarantined_whether_the_database_or_the_spool_takes_it(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    directory = tmp_path / "db"
    url = f"sqlite:///{directory / 'billing.db'}"
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(BillingStore.start_link, store_config(url, tmp_path, retry_interval=1.0), name="billing")
        )
        assert (await store_status()).spooling  # no database yet: the spool cannot encode it either
        with pytest.raises(CdrQuarantined, match="cannot be spooled"):
            await open_cdr(_open("spooled", a_from_tag=NOT_UTF8))
        await open_cdr(_open("fine-1"))
        directory.mkdir()
        mock_clock.jump(1.0)
        await until_connected()
        with pytest.raises(CdrQuarantined, match="refused by the database"):
            await open_cdr(_open("written", a_from_tag=NOT_UTF8))  # at once: no stall, no retry
        await open_cdr(_open("fine-2"))
        assert (await store_status()).quarantined == 2
        nursery.cancel_scope.cancel()
    assert _call_ids(url) == {"fine-1": CdrStatus.OPEN, "fine-2": CdrStatus.OPEN}
    assert [d["op"]["v"]["a_from_tag"] for d in _dead_letters(tmp_path)] == [NOT_UTF8, NOT_UTF8]


async def test_steps_queued_as_a_supervisor_stops_the_store_are_written_to_the_database_not_spooled(
    tmp_path: Path,
) -> None:
    """A node's shutdown: the supervisor stops the store (cancelling its worker tasks with it) while
    the last calls' closes are still queued. The store's terminate writes them through its database
    thread, which must not have ended with the cancellation."""
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    config = store_config(url, tmp_path, heartbeat_interval=3600.0)
    queue = CdrQueue()
    for attempt in range(5):  # the cancellation and terminate's write race: give it several chances
        async with trio.open_nursery() as nursery:
            supervisor = await nursery.start(Supervisor.start_link, [billing_child_spec(config, queue=queue)])
            await until_connected()
            for n in range(3):
                queue.submit(_open(f"a{attempt}-{n}"))  # the store is woken, it has not taken them
            await stop(supervisor, "shutdown")
        assert not (tmp_path / "spool" / "n1.jsonl").exists(), f"attempt {attempt}: spooled at the stop"
        assert _call_ids(url) == {f"a{a}-{n}": CdrStatus.OPEN for a in range(attempt + 1) for n in range(3)}
