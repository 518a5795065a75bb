"""switchd.app: the tree, crash isolation, the SIGTERM drain, SIGHUP reload, and the daemon's start."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
import trio.testing

import switchd.app as app_module
from switchd.app import Runtime, build_app, migrate, reload_config, run_daemon, serve
from switchd.billing import RateDeck, read_deck_file, store_status
from switchd.config import Address, Config, loads
from switchd.otp import (
    Application,
    ChildSpec,
    Down,
    ExitReason,
    GenServer,
    LoopLag,
    NoReply,
    Pid,
    Process,
    Restart,
    Stop,
    Supervisor,
    get_state,
    monitor,
    receive,
    self_pid,
    send_after,
    start_child,
    stop,
    whereis,
    which_children,
)
from switchd.sip import Request, Response, make_response, parse_message, serialize
from switchd.switch import Outbound, Overloaded, ReloadResult, a_leg_name, listening_on, reload, router_state

from .switch.test_dispatch import Mailbox
from .switch.transport_helpers import Peer, request

ROUTES = """
[[gateways]]
name = "gw1"
address = "127.0.0.1:5071"

[[routes]]
prefix = ""
gateways = ["gw1"]
"""


def make_config(tmp_path: Path, *, drain_timeout: float = 30.0, routes: str = ROUTES) -> Config:
    (tmp_path / "routes.toml").write_text(routes)
    config = loads(f"""
node = "test-node"
data_dir = "data"
[timers]
drain_timeout = {drain_timeout}
[acl]
trusted = ["127.0.0.0/8"]  # the tests call from here without accounts, as the shipped config lets one
[routing]
routes_file = "routes.toml"
""", base_dir=tmp_path)
    return dataclasses.replace(config, sip=dataclasses.replace(config.sip, listen=Address("127.0.0.1", 0)),
                               api=dataclasses.replace(config.api, listen=Address("127.0.0.1", 0)))


def children_named(app: Application, *ids: str) -> list[ChildSpec]:
    by_id = {spec.id: spec for spec in app.children}
    return [by_id[i] for i in ids]


def runtime_of(app: Application) -> Runtime:
    assert isinstance(app.config, Runtime)
    return app.config


@asynccontextmanager
async def tree(specs: Sequence[ChildSpec], app: Application) -> AsyncIterator[Pid]:
    async with trio.open_nursery() as nursery:
        root: Pid = await nursery.start(partial(Supervisor.start_link, specs, app.flags, name=app.name))
        yield root
        await stop(root, "shutdown", timeout=60)


class FakeCall(GenServer[str]):
    """Stands in for a CallSession: registered by Call-ID, ends after `hold` s, records its terminate."""

    ended: ClassVar[list[tuple[str, ExitReason, float]]] = []

    async def init(self, call_id: str, hold: float | None) -> str:
        if hold is not None:
            send_after(self_pid(), "hang up", hold)
        return call_id

    async def handle_info(self, msg: Any, state: str) -> NoReply[str] | Stop[str]:
        return Stop("normal", state)

    async def terminate(self, reason: ExitReason, state: str) -> None:
        FakeCall.ended.append((state, reason, trio.current_time()))


async def start_call(call_id: str, hold: float | None) -> Pid:
    spec = ChildSpec(id=call_id, start=partial(FakeCall.start_link, call_id, hold, name=a_leg_name(call_id)),
                     restart=Restart.TEMPORARY)
    return await start_child("calls", spec)


# --- the tree --------------------------------------------------------------------------------------


async def test_the_whole_tree_starts_in_order_and_answers_sip(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with trio.open_nursery() as nursery:
        root: Pid = await nursery.start(serve, config)
        assert [c.id for c in await which_children(root)] == ["events", "billing", "router", "location", "calls",
                                                               "collector", "sip", "registrations", "reloader", "api"]
        assert whereis("gateway:gw1") is not None and whereis("registrar") is not None
        [(host, port)] = await listening_on()
        peer = Peer(await trio.open_tcp_stream(host, port))
        await peer.send(request("OPTIONS", "ping-1"))
        answer = await peer.read()
        assert isinstance(answer, Response) and answer.status == 200
        await peer.stream.aclose()
        await stop("switchd", "shutdown", timeout=30)
    assert (tmp_path / "data" / "switchd.sqlite3").is_file()  # migrated by the daemon itself


async def test_the_tree_stops_in_reverse_start_order(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    exits: list[str] = []
    async with trio.open_nursery() as nursery:
        root: Pid = await nursery.start(serve, config)
        children = {c.pid: c.id for c in await which_children(root) if c.pid is not None}

        watching_all = trio.Event()

        async def watch() -> None:
            for pid in children:
                monitor(pid)
            watching_all.set()
            while len(exits) < len(children):
                down = await receive(match=lambda m: isinstance(m, Down))
                assert isinstance(down, Down)
                exits.append(children[down.pid])

        async with trio.open_nursery() as watching:
            await watching.start(Process.start_link, watch)
            await watching_all.wait()
            await stop("switchd", "shutdown", timeout=30)
    assert exits == ["api", "reloader", "registrations", "sip", "collector", "calls", "location", "router", "billing", "events"]


async def test_serve_returns_0_after_a_clean_stop(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    codes: list[int] = []

    async def run(task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        codes.append(await serve(config, task_status=task_status))

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        await stop("switchd", "shutdown", timeout=30)
    assert codes == [0]


async def test_the_rate_deck_is_read_once_for_billing_and_routing_costs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import switchd.billing._store as store_module

    (tmp_path / "rates.csv").write_text("prefix,description,price_per_minute\n1,USA,0.01\n44,UK,0.02\n")
    config = make_config(tmp_path)
    config = dataclasses.replace(config, billing=dataclasses.replace(config.billing, rate_deck=tmp_path / "rates.csv"))
    reads: list[Path] = []

    def counted(path: Path, **kwargs: Any) -> RateDeck:
        reads.append(path)
        return read_deck_file(path, **kwargs)

    monkeypatch.setattr(app_module, "read_deck_file", counted)
    monkeypatch.setattr(store_module, "read_deck_file", counted)
    deck = app_module.check_start(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, config, deck=deck))
        costs = (await router_state()).costs
        assert costs is not None  # the Router got its prices from the same deck
        assert (await store_status()).plans == ("default",)
        await stop("switchd", "shutdown", timeout=30)
    assert reads == [tmp_path / "rates.csv"]


def test_run_daemon_returns_2_when_the_database_cannot_be_prepared(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, database=dataclasses.replace(config.database,
                                                                      url="sqlite:////proc/no/such/dir/x.db"))
    assert run_daemon(config) == 2


@pytest.mark.parametrize("victim", ["router", "billing", "events"])
async def test_a_crash_of_a_shared_server_restarts_only_it_and_ends_no_call(tmp_path: Path, victim: str) -> None:
    config = make_config(tmp_path)
    await trio.to_thread.run_sync(migrate, config)
    app = build_app(config)
    async with tree(children_named(app, "events", "billing", "router", "calls"), app):
        call = await start_call("in-flight", None)
        before = {c.id: c.pid for c in await which_children("switchd")}
        await stop(victim, "crashed by the test", timeout=10)
        await trio.testing.wait_all_tasks_blocked()  # the supervisor has the exit: our call queues behind it
        after = {c.id: c.pid for c in await which_children("switchd")}
        assert after[victim] is not None and after[victim] != before[victim]
        assert {k: v for k, v in after.items() if k != victim} == {k: v for k, v in before.items() if k != victim}
        assert whereis(a_leg_name("in-flight")) == call  # the call in flight never noticed


async def test_a_crashed_call_ends_only_that_call(tmp_path: Path) -> None:
    app = build_app(make_config(tmp_path))
    async with tree(children_named(app, "events", "router", "calls"), app):
        crashing = await start_call("crashing", None)
        other = await start_call("other", None)
        calls = whereis("calls")
        await stop(crashing, "crashed by the test", timeout=5)
        await trio.testing.wait_all_tasks_blocked()
        assert whereis(a_leg_name("other")) == other
        assert whereis("calls") == calls
        assert [c.pid for c in await which_children("calls")] == [other]


async def test_a_restarted_router_comes_back_with_the_last_accepted_table(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    app = build_app(config)
    runtime = runtime_of(app)
    async with tree(children_named(app, "events", "router", "calls", "sip", "registrations", "reloader"), app):
        (tmp_path / "routes.toml").write_text(ROUTES.replace('prefix = ""', 'prefix = "44"'))
        result = await reload()
        assert result.ok and result.routes == 1
        (tmp_path / "routes.toml").write_text("this is [ not toml")  # broken after the reload
        await stop("router", "crashed by the test", timeout=5)
        await trio.testing.wait_all_tasks_blocked()
        assert [r.prefix for r in (await router_state()).table.routes] == ["44"]
        assert runtime.reloads == 1


# --- SIGTERM: the drain ------------------------------------------------------------------------------


async def test_the_drain_refuses_new_calls_and_waits_only_as_long_as_calls_last(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    FakeCall.ended.clear()
    app = build_app(make_config(tmp_path, drain_timeout=30))
    runtime = runtime_of(app)
    assert app.prep_stop is not None
    async with tree(children_named(app, "calls"), app), trio.open_nursery() as nursery:
        await start_call("short", 3.0)
        await start_call("shorter", 1.0)
        box = Mailbox()
        conn: Pid = await nursery.start(Process.start_link, box.run)
        async with trio.open_nursery() as draining:
            draining.start_soon(app.prep_stop, app)
            await trio.testing.wait_all_tasks_blocked()
            assert runtime.admission.draining
            await runtime.dispatcher(parse_message(request("INVITE", "too-late")), conn, 0.0)
            refused = await box.next(0)
            assert isinstance(refused, Outbound) and isinstance(refused.message, Response)
            assert (refused.message.status, refused.message.headers.get("Retry-After")) == (503, "30")
        assert trio.current_time() == 3.0
        nursery.cancel_scope.cancel()
    assert [(c, r) for c, r, _ in FakeCall.ended] == [("shorter", "normal"), ("short", "normal")]


async def test_calls_still_up_at_the_drain_timeout_are_ended_then(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    FakeCall.ended.clear()
    app = build_app(make_config(tmp_path, drain_timeout=10))
    async with tree(children_named(app, "calls"), app):
        await start_call("forever-1", None)
        await start_call("forever-2", None)
        await start_call("brief", 2.0)
        assert app.prep_stop is not None
        await app.prep_stop(app)
        assert trio.current_time() == 10.0
        assert await which_children("calls") == []
    ended = {c: (r, t) for c, r, t in FakeCall.ended}
    assert ended["brief"] == ("normal", 2.0)
    assert ended["forever-1"] == ("shutdown", 10.0)
    assert ended["forever-2"] == ("shutdown", 10.0)


async def test_a_drain_with_no_calls_returns_at_once(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    app = build_app(make_config(tmp_path))
    async with tree(children_named(app, "calls"), app):
        assert app.prep_stop is not None
        await app.prep_stop(app)
        assert trio.current_time() == 0.0


# --- SIGHUP: reload ----------------------------------------------------------------------------------


async def test_a_reload_with_an_invalid_routes_file_changes_nothing(tmp_path: Path) -> None:
    app = build_app(make_config(tmp_path))
    runtime = runtime_of(app)
    async with tree(children_named(app, "events", "router", "calls", "sip", "registrations"), app):
        before = await router_state()
        (tmp_path / "routes.toml").write_text(ROUTES.replace('gateways = ["gw1"]', 'gateways = ["nowhere"]'))
        result = await reload_config(runtime)
        assert not result.ok and result.error is not None and "unknown gateway 'nowhere'" in result.error
        after = await router_state()
        assert after.table == before.table and after.swaps == before.swaps
        assert runtime.table == before.table and runtime.reloads == 0


async def test_a_valid_reload_swaps_the_table_and_starts_links_for_new_gateways(tmp_path: Path) -> None:
    app = build_app(make_config(tmp_path))
    runtime = runtime_of(app)
    async with tree(children_named(app, "events", "router", "calls", "sip", "registrations"), app):
        (tmp_path / "routes.toml").write_text(ROUTES + """
[[gateways]]
name = "gw2"
address = "127.0.0.1:5072"

[[routes]]
prefix = "44"
gateways = ["gw2", "gw1"]
""")
        result = await reload_config(runtime)
        assert result == ReloadResult(True, routes=2, rates=None, gateways=("gw2: new at 127.0.0.1:5072",))
        assert whereis("gateway:gw2") is not None
        assert len((await router_state()).table) == 2


async def test_sighup_reloads_the_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = trio.Event()
    results: list[ReloadResult] = []

    async def observed(runtime: Runtime) -> ReloadResult:
        results.append(await reload_config(runtime))
        done.set()
        return results[-1]

    monkeypatch.setattr(app_module, "reload_config", observed)
    app = build_app(make_config(tmp_path))
    async with tree(children_named(app, "events", "router", "calls", "sip", "registrations", "reloader"), app):
        (tmp_path / "routes.toml").write_text(ROUTES.replace('prefix = ""', 'prefix = "1"'))
        os.kill(os.getpid(), signal.SIGHUP)
        with trio.fail_after(5):
            await done.wait()
        assert results[0].ok
        assert [r.prefix for r in (await router_state()).table.routes] == ["1"]


# --- a whole call through the tree ---------------------------------------------------------------------


async def test_a_call_over_tcp_is_relayed_to_the_gateway_answered_and_hung_up(tmp_path: Path) -> None:
    [gateway_listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    gw_port = gateway_listener.socket.getsockname()[1]
    config = make_config(tmp_path, routes=ROUTES.replace("127.0.0.1:5071", f"127.0.0.1:{gw_port}"))
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, config)
        [(host, port)] = await listening_on()
        caller = Peer(await trio.open_tcp_stream(host, port))
        await caller.send(request("INVITE", "e2e-1", uri="sip:15551234567@127.0.0.1",
                                  extra="Content-Type: application/sdp\r\n", body=b"v=0\r\n"))
        gateway = Peer(await gateway_listener.accept())
        b_invite = await gateway.read()
        assert isinstance(b_invite, Request) and b_invite.method == "INVITE" and b_invite.body == b"v=0\r\n"
        assert b_invite.call_id != "e2e-1"  # a B2BUA: the B-leg is a dialog of its own
        await gateway.send(serialize(make_response(b_invite, 200, to_tag="gw-tag", headers=[
            ("Contact", f"<sip:bob@127.0.0.1:{gw_port};transport=tcp>"), ("Content-Type", "application/sdp")],
            body=b"v=0\r\n")))
        statuses: list[int] = []
        answer: Request | Response | None = None
        while not statuses or statuses[-1] < 200:
            answer = await caller.read()
            assert isinstance(answer, Response) and answer.call_id == "e2e-1"
            statuses.append(answer.status)
        assert statuses[-1] == 200 and isinstance(answer, Response)
        to_tag = answer.to.tag
        assert to_tag is not None
        await caller.send(request("ACK", "e2e-1", to_tag=to_tag) + request("BYE", "e2e-1", to_tag=to_tag, cseq=2))
        b_ack = await gateway.read()
        assert isinstance(b_ack, Request) and b_ack.method == "ACK"
        b_bye = await gateway.read()
        assert isinstance(b_bye, Request) and b_bye.method == "BYE" and b_bye.call_id == b_invite.call_id
        await gateway.send(serialize(make_response(b_bye, 200)))
        bye_ok = await caller.read()
        assert isinstance(bye_ok, Response) and (bye_ok.status, bye_ok.cseq.method) == (200, "BYE")
        await caller.stream.aclose()
        await stop("switchd", "shutdown", timeout=30)
    await gateway_listener.aclose()


# --- limits ------------------------------------------------------------------------------------------


async def test_the_configured_limits_reach_admission_and_the_connection_table_which_share_one_tally(
        tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(
        config, sip=dataclasses.replace(config.sip, max_connections=7, max_connections_per_ip=3, idle_timeout=9.0),
        limits=dataclasses.replace(config.limits, cps=1.0, burst=2, per_ip_cps=0.0))
    runtime = runtime_of(build_app(config))
    assert (runtime.connections.max_connections, runtime.connections.max_connections_per_ip) == (7, 3)
    assert runtime.conn_settings.idle_timeout == 9.0
    assert runtime.connections.rejections is runtime.admission.rejections
    runtime.admission.admit("192.0.2.1")
    runtime.admission.admit("192.0.2.1")
    with pytest.raises(Overloaded):  # a burst of 2, then 1 a second
        runtime.admission.admit("192.0.2.1")
    await trio.sleep(1.0)
    runtime.admission.admit("192.0.2.1")
    assert runtime.admission.statistics().rejections.by_cause == {"rate": 1}


async def test_with_max_loop_lag_a_monitor_starts_first_and_a_stalled_loop_gets_the_next_invite_503(
        tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, limits=dataclasses.replace(config.limits, max_loop_lag=0.02,
                                                                    loop_lag_interval=0.5))
    async with trio.open_nursery() as nursery:
        root: Pid = await nursery.start(serve, config)
        assert [c.id for c in await which_children(root)][:2] == ["loop_lag", "events"]
        monitor_pid = whereis("loop_lag")
        assert monitor_pid is not None
        lag: LoopLag = (await get_state(monitor_pid)).lag
        [(host, port)] = await listening_on()
        caller = Peer(await trio.open_tcp_stream(host, port))
        seen = lag.samples
        with trio.fail_after(5):
            while lag.samples == seen:  # a tick was just handled: the next is due in 0.5 s
                await trio.sleep(0.01)
        time.sleep(1.0)  # noqa: ASYNC251 - the loop stands still for 1 s: the next tick is ~0.5 s late
        with trio.fail_after(5):
            while lag.samples == seen + 1:
                await trio.sleep(0.01)
        assert lag.max >= 0.4 and lag.mean > 0.02  # ~0.1: seven on-time ticks (3.5 s) to fall under 0.02
        await caller.send(request("INVITE", "lag-1", uri="sip:15551234567@127.0.0.1"))
        answer = await caller.read()
        assert isinstance(answer, Response) and answer.status == 503
        assert answer.headers.get("Retry-After") == "1"
        await caller.stream.aclose()
        await stop("switchd", "shutdown", timeout=30)
