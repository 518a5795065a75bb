"""processes() and tree(): every live process with its name, kind, parent, restarts, mailbox, status."""

from __future__ import annotations

from functools import partial

import pytest
import trio
from trio.testing import MockClock

from switchd.otp import (
    ChildSpec,
    ChildType,
    DynamicSupervisor,
    EventManager,
    ServerExited,
    Supervisor,
    TreeNode,
    call,
    cast,
    process_info,
    processes,
    start_child,
    suspend,
    tree,
    whereis,
)

from ._workers import Journal, Worker
from .test_state_machine import Phone


async def test_processes_lists_every_live_process_with_its_details(autojump_clock: MockClock) -> None:
    journal = Journal()
    children = [
        ChildSpec("events", partial(EventManager.start_link, name="events")),
        ChildSpec("w", partial(Worker.start_link, journal, "w", name="w")),
        ChildSpec("calls", partial(DynamicSupervisor.start_link, name="calls"), type=ChildType.SUPERVISOR),
    ]
    async with trio.open_nursery() as nursery:
        root = await nursery.start(partial(Supervisor.start_link, children, name="app"))
        await trio.sleep(2.0)
        phone = await start_child("calls", ChildSpec("call", Phone.start_link))
        with pytest.raises(ServerExited):
            await call("w", "crash")
        await trio.testing.wait_all_tasks_blocked()
        await suspend("events")
        await call(phone, "dial")
        infos = {i.name or str(i.pid): i for i in processes()}
        assert set(infos) == {"app", "events", "w", "calls", str(phone)}
        assert infos["app"].kind == "supervisor" and infos["app"].parent is None
        assert infos["app"].status == "one_for_one, 3/3 children running"
        assert infos["events"].kind == "event_manager" and infos["events"].status == "suspended"
        assert infos["w"].parent == root and infos["w"].restarts == 1 and infos["w"].child_id == "w"
        assert infos["w"].started_at == 2.0
        assert infos[str(phone)].kind == "statem" and infos[str(phone)].parent == whereis("calls")
        assert infos[str(phone)].status == "state='ringing'"
        assert infos["calls"].status == "dynamic, 1/1 children running"
        info = process_info(phone)
        assert info is not None and info.mailbox_depth == 0
        nursery.cancel_scope.cancel()
    assert processes() == []


class Call(Phone):
    """A state machine that names its own kind, as switchd's CallSession ("call") does."""

    kind = "call"


async def test_a_state_machine_of_its_own_kind_still_shows_its_status() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Call.start_link)
        await call(pid, "dial")
        info = process_info(pid)
        assert info is not None and (info.kind, info.status) == ("call", "state='ringing'")
        nursery.cancel_scope.cancel()


async def test_mailbox_depth_counts_waiting_messages() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        await suspend(pid)
        for _ in range(3):
            cast(pid, "x")
        info = process_info(pid)
        assert info is not None and info.mailbox_depth == 3
        nursery.cancel_scope.cancel()


async def test_tree_nests_children_under_their_supervisors_in_start_order() -> None:
    journal = Journal()
    inner = ChildSpec("inner", partial(Supervisor.start_link,
                                       [ChildSpec("b", partial(Worker.start_link, journal, "b", name="b"))],
                                       name="inner"), type=ChildType.SUPERVISOR)
    children = [ChildSpec("a", partial(Worker.start_link, journal, "a", name="a")), inner]
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(Supervisor.start_link, children, name="top"))
        [top] = tree()

        def shape(node: TreeNode) -> object:
            return (node.info.name, [shape(c) for c in node.children])

        assert shape(top) == ("top", [("a", []), ("inner", [("b", [])])])
        nursery.cancel_scope.cancel()
