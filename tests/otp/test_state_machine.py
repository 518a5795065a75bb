"""StateMachine (gen_statem): transitions, postpone, next_event, the three timeouts, state enter."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from switchd.otp import (
    CAST,
    EVENT_TIMEOUT,
    INFO,
    INTERNAL,
    STATE_TIMEOUT,
    Action,
    Call,
    Enter,
    EventTimeout,
    EventType,
    GenericTimeout,
    KeepState,
    NextEvent,
    NextState,
    NoProcess,
    OTPError,
    Postpone,
    ReplyAction,
    ServerExited,
    StateMachine,
    StateTimeout,
    Stop,
    call,
    cast,
    get_state,
    send,
    stop,
)

Data = list[tuple[float, str]]
Result = NextState[str, Data] | KeepState[Data] | Stop[Data]


def note(data: Data, what: str) -> Data:
    return [*data, (trio.current_time(), what)]


class Phone(StateMachine[str, Data]):
    """idle --dial--> ringing --answer--> talking --hangup--> idle; rings for 30 s at most."""

    state_enter = True

    async def init(self) -> tuple[str, Data]:
        return "idle", []

    async def handle_event(self, event: Any, content: Any, state: str, data: Data) -> Result:
        match event, content, state:
            case Enter(old), _, _:
                if state == "talking":  # idle after 10 s of silence; at most 100 s per call
                    return KeepState(note(data, f"enter {state} from {old}"),
                                     [EventTimeout(10.0, "silence"), GenericTimeout("max", 100.0, "too long")])
                return KeepState(note(data, f"enter {state} from {old}"))
            case Call(caller), "dial", "idle":
                return NextState("ringing", data, [ReplyAction(caller, "ringing"), StateTimeout(30.0, "no answer")])
            case Call(caller), "status", "ringing":
                return KeepState(data, [Postpone()])  # answered once the call is up
            case Call(caller), "status", _:
                return KeepState(data, [ReplyAction(caller, state)])
            case EventType.CAST, "answer", "ringing":
                return NextState("talking", note(data, "answered"))
            case EventType.CAST, "quick", "idle":
                return NextState("ringing", data, [NextEvent(INTERNAL, "auto-answer")])
            case EventType.INTERNAL, "auto-answer", "ringing":
                return NextState("talking", note(data, "auto-answered"))
            case EventType.CAST, "speak", "talking":
                return KeepState(note(data, "speak"))
            case EventType.CAST, "hangup", _:
                return NextState("idle", note(data, "hangup"))
            case EventType.STATE_TIMEOUT, why, "ringing":
                return NextState("idle", note(data, f"state timeout: {why}"))
            case EventType.EVENT_TIMEOUT, why, "talking":
                return NextState("idle", note(data, f"event timeout: {why}"))
            case GenericTimeout("max"), why, _:
                return NextState("idle", note(data, f"generic timeout: {why}"))
            case EventType.INFO, "die", _:
                return Stop("normal", note(data, "die"))
        return KeepState(note(data, f"ignored {event}/{content} in {state}"))

    async def terminate(self, reason: object, state: str, data: Data) -> None:
        Phone.terminated.append((reason, state, data[-1][1] if data else None))

    terminated: ClassVar[list[tuple[object, str, object]]] = []


async def journal(pid: Any) -> Data:
    _state, data = await get_state(pid)
    return list(data)


async def test_call_cast_and_state_enter_drive_the_transitions() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        assert await call(pid, "dial") == "ringing"
        cast(pid, "answer")
        assert await call(pid, "status") == "talking"
        assert [w for _, w in await journal(pid)] == [
            "enter idle from idle", "enter ringing from idle", "answered", "enter talking from ringing"]
        nursery.cancel_scope.cancel()


async def test_a_state_timeout_fires_when_the_state_lasts(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        await call(pid, "dial")
        await trio.sleep(31.0)
        assert (await journal(pid))[-2] == (30.0, "state timeout: no answer")
        assert await call(pid, "status") == "idle"
        nursery.cancel_scope.cancel()


async def test_a_state_change_cancels_the_state_timeout(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        await call(pid, "dial")
        await trio.sleep(5.0)
        cast(pid, "answer")
        for _ in range(5):  # keep talking past t=30 so the event timeout stays away
            await trio.sleep(8.0)
            cast(pid, "speak")
        await trio.sleep(1.0)
        assert not any("state timeout" in w for _, w in await journal(pid))
        nursery.cancel_scope.cancel()


async def test_any_event_restarts_the_event_timeout_which_fires_after_silence(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        await call(pid, "dial")
        cast(pid, "answer")  # t=0, talking: event timeout 10 s
        await trio.sleep(9.0)
        cast(pid, "speak")  # t=9: this event cancels it (and speak sets no new one)
        await trio.sleep(50.0)
        assert not any("event timeout" in w for _, w in await journal(pid))
        cast(pid, "hangup")
        await call(pid, "dial")
        cast(pid, "answer")  # t=59: talking again, silence from now on
        await trio.sleep(20.0)
        assert (await journal(pid))[-2] == (69.0, "event timeout: silence")
        nursery.cancel_scope.cancel()


async def test_a_generic_timeout_survives_events_and_fires_by_name(autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        await call(pid, "dial")
        cast(pid, "answer")  # t=0
        for _ in range(12):  # speak every 9 s: no silence timeout, but the 100 s limit stays
            await trio.sleep(9.0)
            cast(pid, "speak")
        await trio.sleep(10.0)
        assert (100.0, "generic timeout: too long") in await journal(pid)
        assert await call(pid, "status") == "idle"
        nursery.cancel_scope.cancel()


async def test_a_postponed_call_is_redelivered_after_the_state_changes() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        await call(pid, "dial")
        answers: list[object] = []

        async def ask() -> None:
            answers.append(await call(pid, "status"))

        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        assert answers == []  # postponed while ringing
        cast(pid, "answer")
        await trio.testing.wait_all_tasks_blocked()
        assert answers == ["talking"]
        nursery.cancel_scope.cancel()


async def test_next_event_is_handled_before_messages_already_in_the_mailbox() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        cast(pid, "quick")
        cast(pid, "hangup")  # already queued when "quick" inserts its internal event
        await trio.testing.wait_all_tasks_blocked()
        assert [w for _, w in await journal(pid)][1:] == [
            "enter ringing from idle", "auto-answered", "enter talking from ringing", "hangup",
            "enter idle from talking"]
        nursery.cancel_scope.cancel()


async def test_stop_from_handle_event_runs_terminate_with_state_and_data() -> None:
    Phone.terminated = []
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        send(pid, "die")
    assert Phone.terminated == [("normal", "idle", "die")]
    with pytest.raises(NoProcess):
        await call(pid, "status")


async def test_calls_to_a_stopped_machine_get_server_exited() -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Phone.start_link)
        await call(pid, "dial")

        async def stopper() -> None:
            await stop(pid, "maintenance")

        async with trio.open_nursery() as inner:
            inner.start_soon(stopper)
            with pytest.raises(ServerExited, match="maintenance"):
                await call(pid, "status", timeout=60.0)  # postponed, then the machine stops


class Eager(StateMachine[str, int]):
    state_enter = True

    async def init(self) -> tuple[str, int, list[Any]]:
        return "a", 0, [StateTimeout(1.0, "go")]

    async def handle_event(self, event: Any, content: Any, state: str,
                           data: int) -> NextState[str, int] | KeepState[int]:
        if isinstance(event, Enter):
            if state == "b":
                return NextState("c", data)  # not allowed
            return KeepState(data + 1)
        if event is STATE_TIMEOUT:
            return NextState("b", data)
        assert event in (CAST, INFO, EVENT_TIMEOUT)
        return KeepState(data)


async def test_init_actions_run_and_an_enter_call_may_not_change_state(autojump_clock: MockClock) -> None:
    with pytest.RaisesGroup(pytest.RaisesExc(OTPError, match="may not change the state")):
        async with trio.open_nursery() as nursery:
            pid = await nursery.start(Eager.start_link)
            assert await get_state(pid) == ("a", 1)  # the initial enter call ran
            await trio.sleep(5.0)
    assert trio.current_time() == 1.0


class Timed(StateMachine[str, list[tuple[str, float]]]):
    """'go' toggles the state and sets a 2.25 s state timeout; 'poke' sets a 1.75 s event timeout;
    'stay' does nothing. Fired timeouts are recorded with their time."""

    async def init(self) -> tuple[str, list[tuple[str, float]]]:
        return "a", []

    async def handle_event(self, event: Any, content: Any, state: str, data: list[tuple[str, float]]
                           ) -> NextState[str, list[tuple[str, float]]] | KeepState[list[tuple[str, float]]]:
        if event is EventType.CAST and content == "go":
            return NextState("b" if state == "a" else "a", data, [StateTimeout(2.25)])
        if event is EventType.CAST and content == "poke":
            return KeepState(data, [EventTimeout(1.75)])
        if event in (EventType.STATE_TIMEOUT, EventType.EVENT_TIMEOUT):
            return KeepState([*data, (event.value, trio.current_time())])
        return KeepState(data)


def _timeout_model(ops: list[tuple[int, str]], end: float) -> list[tuple[str, float]]:
    """gen_statem's rules, simulated: a state change cancels the state timeout, any event the event timeout."""
    fired: list[tuple[str, float]] = []
    state_deadline: float | None = None
    event_deadline: float | None = None
    queue = [(float(sum(gap for gap, _ in ops[: i + 1])), op) for i, (_, op) in enumerate(ops)]
    while True:
        candidates = [t for t in (state_deadline, event_deadline) if t is not None]
        timer = min(candidates) if candidates else None
        if queue and (timer is None or queue[0][0] < timer):
            now, op = queue.pop(0)
            event_deadline = None  # any event cancels the event timeout
            if op == "go":
                state_deadline = now + 2.25
            elif op == "poke":
                event_deadline = now + 1.75
        elif timer is not None and timer <= end:
            if timer == state_deadline:
                fired.append(("state_timeout", timer))
                state_deadline = None
                event_deadline = None  # the timeout event is an event too
            else:
                fired.append(("event_timeout", timer))
                event_deadline = None
        else:
            return fired


@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["go", "poke", "stay"])), max_size=12))
@settings(max_examples=60, deadline=None)
def test_state_and_event_timeouts_follow_gen_statem_rules(ops: list[tuple[int, str]]) -> None:
    end = float(sum(gap for gap, _ in ops)) + 10.0
    recorded: list[tuple[str, float]] = []

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            pid = await nursery.start(Timed.start_link)
            for gap, op in ops:
                await trio.sleep(gap)
                cast(pid, op)
                await trio.testing.wait_all_tasks_blocked()
            await trio.sleep_until(end)
            _, data = await get_state(pid)
            recorded.extend(data)
            nursery.cancel_scope.cancel()

    trio.run(scenario, clock=MockClock(autojump_threshold=0))
    assert recorded == _timeout_model(ops, end)


class Deadline(StateMachine[str, list[tuple[Any, float]]]):
    """Re-arms GenericTimeout("t") at the absolute deadline a cast names, after every event."""

    async def init(self, first: float) -> tuple[str, list[tuple[Any, float]], list[Action]]:
        return "on", [], [GenericTimeout("t", first, "fired", absolute=True)]

    async def handle_event(self, event: Any, content: Any, state: str, data: list[tuple[Any, float]]
                           ) -> KeepState[list[tuple[Any, float]]]:
        if isinstance(event, GenericTimeout):
            return KeepState([*data, (content, trio.current_time())])
        assert event is EventType.CAST
        return KeepState(data, [GenericTimeout("t", content, "fired", absolute=True)])


async def test_an_absolute_generic_timeout_set_again_at_the_same_deadline_stands_and_fires_once(
        autojump_clock: MockClock) -> None:
    async with trio.open_nursery() as nursery:
        pid = await nursery.start(Deadline.start_link, 10.0)
        for _ in range(5):  # the same deadline after every event: the armed timer stays
            cast(pid, 10.0)
            await trio.sleep(1.0)
        timers = pid._proc.timers
        assert timers is not None and len(timers) == 1  # no new timer per event
        cast(pid, 12.5)  # a new deadline replaces it
        await trio.sleep(20.0)
        assert pid._proc.state[1] == [("fired", 12.5)]
        cast(pid, 3.0)  # a deadline already past fires at once
        await trio.sleep(0.1)
        assert pid._proc.state[1] == [("fired", 12.5), ("fired", 25.0)]
        nursery.cancel_scope.cancel()
