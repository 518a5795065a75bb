"""switchd.app: the application tree of one switchd node, and the daemon `switchd run` runs.

```
switchd                 Supervisor (root), one_for_one, 5 restarts in 10 s
├── events              EventManager                      PERMANENT
├── billing             BillingStore (GenServer)          PERMANENT, 10 s to flush on shutdown
├── router              Router (GenServer)                PERMANENT, restarts with the last good table
├── calls               DynamicSupervisor, max_children = limits.max_calls
│   └── call:<id> …     CallSession (StateMachine)        TEMPORARY
├── sip                 Supervisor, one_for_one (see switchd.switch._sip_service)
│   ├── connections     DynamicSupervisor of SipConnection  TEMPORARY
│   ├── gateways        Supervisor of GatewayLink           PERMANENT
│   └── listener        the TCP listener                    PERMANENT
├── reloader            waits for SIGHUP; reloads routes and rates   PERMANENT
└── (api)               the HTTP API — issue 7, not built yet: its slot is marked below
```

Why one_for_one at the root, and why it keeps calls up: every session reaches events, billing
and router by registered name on each use, never by a pid it kept, so when one of them crashes
and is restarted the next use finds the new process; nothing else had to restart with it. With
rest_for_one a billing crash would restart router, calls and sip after it — every call in flight
would end; with one_for_all, every crash would. A crashed session is TEMPORARY under ``calls``:
it is not restarted (its dialogs are gone; its terminate sent BYE and closed the CDR as FAILED),
and its exit never counts toward the restart intensity, so a bug that crashes many calls cannot
take the node down. See docs/otp.md, "The switchd application tree".

Stopping (SIGTERM / SIGINT): `prep_stop` sets the node draining (new INVITEs get 503 with
Retry-After), waits for the calls in flight to end by themselves up to ``timers.drain_timeout``,
then stops the rest — all at once, so their CDR closes share the billing store's batches; each
session's terminate sends BYE on both legs and closes its CDR — and only then is the tree shut
down, in reverse start order, with the SIP connections still up while the BYEs go out. A second
signal cuts the drain short: the tree stops at once (open CDRs are closed as `recovered` at the
next start).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path

import trio

from switchd.billing import (
    BillingError,
    BillingStoreConfig,
    MigrationError,
    NumberingPlan,
    billing_child_spec,
    open_engine,
    read_deck_file,
    reload_rates,
    upgrade,
)
from switchd.config import Config, ConfigError, reload_routes
from switchd.otp import (
    Application,
    Caller,
    ChildSpec,
    ChildType,
    Down,
    DynamicSupervisor,
    EventManager,
    MonitorRef,
    NoProcess,
    NotABehaviour,
    OTPError,
    Pid,
    Process,
    ReceiveTimeout,
    Strategy,
    SupervisorFlags,
    call,
    monitor,
    receive,
    run_async,
    self_pid,
    send,
    stop,
    terminate_child,
    which_children,
)
from switchd.sip import TimerConfig
from switchd.switch import (
    Admission,
    CallSettings,
    ConnectionSettings,
    CostFn,
    Dispatcher,
    Gateway,
    RouteTable,
    call_session_spec,
    costs_from_rates,
    router_child_spec,
    sip_service_spec,
    swap_table,
    update_gateway_links,
)

log = logging.getLogger(__name__)

NAME = "switchd"
"""The application's name, under which the root supervisor registers."""

CALLS = "calls"


@dataclass(slots=True)
class Runtime:
    """What the running tree shares beyond registered names: made by `build_app`, one per node.

    ``table`` and ``gateways`` are the routes last accepted (at start or by a reload): a restarted
    Router starts from them, so a crash never brings back an older table, nor reads a file that a
    later edit broke.
    """

    config: Config
    admission: Admission
    conn_settings: ConnectionSettings
    dispatcher: Dispatcher
    table: RouteTable
    gateways: tuple[Gateway, ...]
    reloads: int = 0
    reload_lock: trio.Lock = field(default_factory=trio.Lock)


# --- building the tree -----------------------------------------------------------------------------


def call_settings(config: Config) -> CallSettings:
    """The CallSettings every session of this node shares, from `config`."""
    return CallSettings(
        node=config.node, local_address=str(config.sip.listen),
        timers=TimerConfig(t1=config.timers.t1, t2=config.timers.t2, t4=config.timers.t4),
        no_answer=config.timers.no_answer, max_call_duration=config.timers.max_call_duration,
    )


def billing_config(config: Config) -> BillingStoreConfig:
    """The BillingStoreConfig of this node, from `config`."""
    b = config.billing
    return BillingStoreConfig(
        url=config.database.url, node=config.node, spool_dir=b.spool, default_plan=b.default_rate_plan,
        numbering=NumberingPlan(country_code=b.country_code, international_prefix=b.international_prefix,
                                trunk_prefix=b.trunk_prefix, national_digits=b.national_digits),
        rate_deck=b.rate_deck, deck_currency=b.currency,
    )


def build_app(config: Config) -> Application:
    """The switchd Application for `config` (see the module docstring for the tree and why).

    Nothing starts here: run it with ``await switchd.otp.run_async(app)`` (or `serve`), or start
    ``app.children`` under a Supervisor of your own in a test. ``app.config`` is the `Runtime`
    (its ``admission`` shows the drain; its ``config`` is `config`).
    """
    sip = config.sip
    conn_settings = ConnectionSettings(max_message_size=sip.max_message_size, max_headers=sip.max_headers,
                                       max_line_length=sip.max_line_length, max_vias=sip.max_vias,
                                       send_queue_size=sip.send_queue_size)
    admission = Admission(drain_retry_after=max(config.timers.drain_timeout, 1.0))
    settings = call_settings(config)
    dispatcher = Dispatcher(session_spec=lambda invite, conn, at: call_session_spec(invite, conn, at, settings),
                            admission=admission, calls=CALLS)
    gateways = _all_gateways(config.routing.gateways, config.routing.table)
    runtime = Runtime(config, admission, conn_settings, dispatcher, config.routing.table, gateways)
    children = [
        ChildSpec(id="events", start=partial(EventManager.start_link, name="events")),
        billing_child_spec(billing_config(config)),
        router_child_spec(lambda: runtime.table, policy=config.routing.policy, costs=_costs(config)),
        ChildSpec(id=CALLS, start=partial(DynamicSupervisor.start_link, max_children=config.limits.max_calls,
                                          name=CALLS),
                  type=ChildType.SUPERVISOR, shutdown=math.inf),
        sip_service_spec(sip.listen.host, sip.listen.port, gateways, conn_settings, dispatcher),
        ChildSpec(id="reloader", start=partial(Reloader.start_link, runtime), shutdown=1.0),
        # api: the HTTP management and billing API (issue 7) goes here, last — it only reads the tree.
    ]
    return Application(
        name=NAME, children=children,
        flags=SupervisorFlags(Strategy.ONE_FOR_ONE, max_restarts=5, max_seconds=10.0),
        prep_stop=partial(_prep_stop, runtime),
        config=runtime,
        # the drain, then the remaining sessions' cleanup (BYE, CDR close): never cut short by this
        prep_stop_timeout=config.timers.drain_timeout + 30.0,
    )


def _all_gateways(configured: tuple[Gateway, ...], table: RouteTable) -> tuple[Gateway, ...]:
    by_name = {gw.name: gw for gw in configured}
    for gw in table.gateways:
        by_name.setdefault(gw.name, gw)
    return tuple(by_name.values())


def _costs(config: Config) -> CostFn | None:
    """Prices per minute from the configured rate deck, for the least_cost policy; None without one."""
    path = config.billing.rate_deck
    if path is None:
        return None
    try:
        deck = read_deck_file(path, plan=config.billing.default_rate_plan, currency=config.billing.currency)
    except BillingError as exc:
        log.warning("least_cost routing without prices: %s", exc)
        return None
    prices: dict[str, Decimal] = {t.prefix: t.price_per_minute for t in deck.tariffs}
    return costs_from_rates({deck.plan: prices}, default_plan=deck.plan)


# --- stopping: the drain ---------------------------------------------------------------------------


async def _prep_stop(runtime: Runtime, app: Application) -> None:
    runtime.admission.begin_drain()
    ended = await drain_calls(runtime.config.timers.drain_timeout)
    log.info("drain finished: %d call(s) ended by the switch", ended, extra={"ended": ended})


async def drain_calls(timeout: float, *, calls: str = CALLS, cleanup_timeout: float = 10.0) -> int:
    """Wait up to `timeout` seconds for every call under `calls` to end, then end the rest.

    Calls that start meanwhile are waited for too (admission should be draining already). The
    rest are stopped all at once with reason "shutdown" (their terminate hangs up and closes the
    CDR), each within `cleanup_timeout`. Returns how many calls were ended that way.
    """
    ended: list[int] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(Process.start_link, partial(_drain, calls, timeout, cleanup_timeout, ended))
    return ended[0] if ended else 0


async def _drain(calls: str, timeout: float, cleanup_timeout: float, ended: list[int]) -> None:
    deadline = trio.current_time() + timeout
    watched: dict[MonitorRef, Pid] = {}
    if await _watch_children(calls, watched):
        log.info("draining %d call(s), up to %gs", len(watched), timeout, extra={"calls": len(watched)})
    while watched:
        try:
            down = await receive(timeout=max(0.0, deadline - trio.current_time()),
                                 match=lambda m: type(m) is Down)
        except ReceiveTimeout:
            break
        assert isinstance(down, Down)
        watched.pop(down.ref, None)
        if not watched:
            await _watch_children(calls, watched)  # calls that started while we waited
    remaining = list(watched.values())
    if remaining:
        log.warning("drain timeout: ending %d call(s) in flight", len(remaining), extra={"calls": len(remaining)})
        async with trio.open_nursery() as nursery:
            for pid in remaining:
                nursery.start_soon(_end_call, calls, pid, cleanup_timeout)
    ended.append(len(remaining))


async def _watch_children(calls: str, watched: dict[MonitorRef, Pid]) -> int:
    try:
        children = await which_children(calls)
    except NoProcess:
        return 0
    for child in children:
        if child.pid is not None:
            watched[monitor(child.pid)] = child.pid
    return len(watched)


async def _end_call(calls: str, pid: Pid, cleanup_timeout: float) -> None:
    try:
        await stop(pid, "shutdown", timeout=cleanup_timeout)
    except NotABehaviour:
        await terminate_child(calls, pid)
    except OTPError as exc:  # it ended by itself meanwhile (NoProcess), or its cleanup overran
        log.debug("ending call %s: %s", pid, exc)


# --- SIGHUP: reload --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload did: `ok` False means nothing changed and `error` says why."""

    ok: bool
    routes: int = 0
    rates: int | None = None  # tariffs loaded; None: no rate deck configured
    gateways: tuple[str, ...] = ()  # gateway links started or replaced
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Reload:
    """Request to the reloader: reload routes and rates now (what SIGHUP does)."""


@dataclass(frozen=True, slots=True)
class _Hangup:
    pass


async def reload_config(runtime: Runtime) -> ReloadResult:
    """Re-read routes and rates, validate them, and swap them in; an invalid file changes nothing.

    Order: the routes are read and validated first (nothing touched yet); then the rate deck is
    reloaded by the billing store (which validates it and keeps the old deck when it is bad — and
    then the routes are not swapped either); then links are started for new gateways; then the
    Router swaps table and costs in one message. Calls in flight keep the routes they got.
    """
    config = runtime.config
    async with runtime.reload_lock:
        try:
            table = await trio.to_thread.run_sync(reload_routes, config)
        except ConfigError as exc:
            log.error("reload refused, nothing changed: %s", exc)
            return ReloadResult(False, error=str(exc))
        rates: int | None = None
        costs: CostFn | None = None
        if config.billing.rate_deck is not None:
            try:
                rates = await reload_rates(config.billing.rate_deck, plan=config.billing.default_rate_plan,
                                           currency=config.billing.currency)
            except (BillingError, OTPError) as exc:
                log.error("reload refused, nothing changed: rates: %s", exc)
                return ReloadResult(False, error=f"rates: {exc}")
            costs = await trio.to_thread.run_sync(_costs, config)
        gateways = _all_gateways((), table)
        try:
            changed = await update_gateway_links(runtime.gateways, gateways, runtime.conn_settings,
                                                 runtime.dispatcher)
            await swap_table(table, costs=costs)
        except OTPError as exc:
            log.error("reload failed while swapping: %s", exc)
            return ReloadResult(False, rates=rates, error=str(exc))
        runtime.table = table
        runtime.gateways = _all_gateways(runtime.gateways, table)
        runtime.reloads += 1
        log.info("reloaded: %d routes%s%s", len(table), "" if rates is None else f", {rates} tariffs",
                 "".join(f"; gateway {c}" for c in changed), extra={"routes": len(table), "rates": rates})
        return ReloadResult(True, routes=len(table), rates=rates, gateways=tuple(changed))


async def reload(*, reloader: Pid | str = "reloader", timeout: float = 60.0) -> ReloadResult:
    """Reload routes and rates in the running node (what SIGHUP does); for the CLI and the API."""
    result: ReloadResult = await call(reloader, Reload(), timeout=timeout)
    return result


class Reloader:
    """The process that turns SIGHUP (and `reload()` calls) into `reload_config`, one at a time."""

    @staticmethod
    async def start_link(runtime: Runtime, *, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> None:
        await Process.start_link(_reloader, runtime, name="reloader", task_status=task_status)


async def _reloader(runtime: Runtime) -> None:
    me = self_pid()

    async def on_sighup() -> None:
        with trio.open_signal_receiver(signal.SIGHUP) as hangups:
            async for _ in hangups:
                send(me, _Hangup())

    async with trio.open_nursery() as nursery:
        if _signals_available():
            nursery.start_soon(on_sighup)
        while True:
            msg = await receive()
            if type(msg) is _Hangup:
                log.info("SIGHUP: reloading routes and rates")
                await reload_config(runtime)
            elif isinstance(msg, Caller) and isinstance(msg.request, Reload):
                msg.reply(await reload_config(runtime))
            else:
                log.warning("reloader: unexpected message %r", msg)


def _signals_available() -> bool:
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP")


# --- the daemon ------------------------------------------------------------------------------------


def migrate(config: Config) -> None:
    """Create the data directories and upgrade the billing schema to head; raises MigrationError."""
    for directory in (config.data_dir, config.billing.spool):
        directory.mkdir(parents=True, exist_ok=True)
    url = config.database.url
    if url.startswith("sqlite") and ":///" in url:
        target = url.partition(":///")[2]
        if target and target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
    engine = open_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


async def serve(config: Config, *, task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> int:
    """Migrate, then run the node until SIGTERM/SIGINT or ``otp.stop("switchd")``; returns the exit code.

    For in-process use (tests): ``await nursery.start(serve, config)`` hands back the root pid once
    the whole tree runs; it must run in the main thread (signal handlers). Exit codes as
    `switchd.otp.run_async`: 0 clean stop, 1 the tree gave up, 2 it failed to start (2 also for a
    database that cannot be migrated).
    """
    try:
        await trio.to_thread.run_sync(migrate, config)
    except (MigrationError, OSError) as exc:
        log.error("cannot prepare the billing database: %s", exc)
        return 2
    return await run_async(build_app(config), task_status=task_status)


def run_daemon(config: Config) -> int:
    """`switchd run`: the node for `config` in the foreground, until SIGTERM/SIGINT; the exit code.

    Upgrades the billing schema to head, starts the tree (the billing store closes CDRs a previous
    run left open as `recovered`), drains calls on the first
    SIGTERM/SIGINT (new calls get 503; up to ``timers.drain_timeout``; the rest get BYE) and stops
    at once on a second. SIGHUP reloads routes and rates. Returns 0 after a clean stop, 1 if the tree
    gave up, 2 if it could not start (the reason is logged), 130 if interrupted while migrating.
    Call it from the main thread; log handlers are the caller's (cli.py installs them).
    """
    try:
        return trio.run(serve, config)
    except KeyboardInterrupt:  # ^C before the signal handlers were installed (during the migration)
        log.warning("interrupted while starting")
        return 130
