"""switchd.app: the application tree of one switchd node, and the daemon `switchd run` runs.

```
switchd                 Supervisor (root), one_for_one, 5 restarts in 10 s
├── events              EventManager                      PERMANENT
├── billing             BillingStore (GenServer)          PERMANENT, 10 s to flush on shutdown
├── router              Router (GenServer)                PERMANENT, restarts with the last good table
├── location            Supervisor, rest_for_one (see switchd.switch._registrar)
│   ├── registrar_db    RegistrarDb (GenServer)           the database side: accounts, bindings
│   └── registrar       Registrar (GenServer)             accounts and bindings in memory
├── calls               DynamicSupervisor, max_children = limits.max_calls
│   └── call:<id> …     CallSession (StateMachine)        TEMPORARY
├── sip                 Supervisor, one_for_one (see switchd.switch._sip_service)
│   ├── connections     DynamicSupervisor of SipConnection  TEMPORARY
│   ├── udp:<address> … UdpSocket, one per sip.listen_udp   PERMANENT
│   ├── gateways        Supervisor of GatewayLink           PERMANENT
│   ├── contacts        DynamicSupervisor of GatewayLink    TRANSIENT, to registered phones being called
│   └── listener        the TCP listener                    PERMANENT
├── registrations       Supervisor, one_for_one (see switchd.switch._trunk)
│   └── trunk:<gw> …    OutboundRegistration (GenServer)  PERMANENT, one per gateway with a registration
├── reloader            Reloader (GenServer): SIGHUP / reload()      PERMANENT
└── api                 Supervisor: the HTTP API, metrics, SIP trace  PERMANENT (see switchd.api)
```

The registrar starts before calls (a call to a user finds it) and after the router; the dispatcher
reaches it by name too (accounts for the digest check, REGISTERs). Its accounts back the digest
check of REGISTER and of challenged INVITEs: it runs whenever either is on. The outbound
registrations start after sip (they send through the gateway links) and so stop before it: the
un-REGISTER each sends at shutdown still finds its link up.

Why one_for_one at the root, and why it keeps calls up: every session reaches events, billing,
router and registrar by registered name on each use, never by a pid it kept, so when one of them crashes
and is restarted the next use finds the new process; nothing else had to restart with it. With
rest_for_one a billing crash would restart router, calls and sip after it — every call in flight
would end; with one_for_all, every crash would. A crashed session is TEMPORARY under ``calls``:
it is not restarted (its dialogs are gone; its terminate sent BYE and closed the CDR, cause crash),
and its exit never counts toward the restart intensity, so a bug that crashes many calls cannot
take the node down. See docs/otp.md, "The switchd application tree".

Stopping (SIGTERM / SIGINT): `prep_stop` is `switchd.switch.drain_node`: the node refuses new
INVITEs (503 with Retry-After), waits for the calls in flight to end by themselves up to
``timers.drain_timeout``, then stops the rest — all at once, so their CDR closes share the billing
store's batches; each session's terminate sends BYE on both legs and closes its CDR — and only
then is the tree shut down, in reverse start order, with the SIP connections still up while the
BYEs go out. A second signal cuts the drain short: the tree stops at once, each session still
running its terminate (CDR closed, cause shutdown) within its shutdown timeout, but without
waiting for the gateways' answers (see docs/operations.md, "Stopping").

This module is the tree's wiring and the daemon's start: the translation of the configuration
into each component's settings is `switchd.config.Config`'s (`call_settings`, `admission`,
`billing_store` ...), the drain and the Reloader are `switchd.switch`'s. What a reload does to
this tree is `reload_config`; what must hold before anything is created is `check_start`.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path

import trio

from switchd import __version__, collector
from switchd.api import ApiSettings, NodeView, api_spec
from switchd.billing import (
    AccountInfo,
    BillingError,
    CdrQueue,
    MigrationError,
    NodeClaim,
    NodeClaimed,
    RateDeck,
    StoreUnavailable,
    billing_child_spec,
    claim_node,
    open_engine,
    read_deck_file,
    set_rates,
    upgrade,
)
from switchd.config import Address, Config, ConfigError, reload_routes
from switchd.otp import (
    Application,
    ChildSpec,
    ChildType,
    DynamicSupervisor,
    EventManager,
    OTPError,
    Pid,
    Strategy,
    SupervisorFlags,
    count_children,
    lag_monitor_spec,
    run_async,
)
from switchd.switch import (
    CALLS,
    AccountsUnavailable,
    Admission,
    ConnectionSettings,
    ConnectionTable,
    CostFn,
    Dispatcher,
    Gateway,
    LinkSettings,
    ReloadResult,
    RouteTable,
    UdpCounters,
    account,
    call_session_specs,
    contact_link_spec,
    costs_from_rates,
    drain_node,
    is_inherited,
    location_spec,
    registrations_spec,
    reload,
    reload_accounts,
    reloader_child_spec,
    router_child_spec,
    sip_service_spec,
    swap_table,
    udp_socket_name,
    update_gateway_links,
    update_registrations,
)

log = logging.getLogger(__name__)

NAME = "switchd"
"""The application's name, under which the root supervisor registers."""


class StartError(Exception):
    """The node cannot start; the message is one line naming the configuration key or the address.

    Raised by `check_start` before anything exists (no database, no directory, no socket kept).
    """


@dataclass(slots=True)
class Runtime:
    """What the running tree shares beyond registered names: made by `build_app`, one per node.

    ``table``, ``gateways`` and ``deck`` are the routes and rates last accepted (at start or by a
    reload): a restarted Router or BillingStore starts from them, so a crash never brings back an
    older table or deck, nor reads a file that a later edit broke.
    """

    config: Config
    admission: Admission  # drain, call limits, and the node's rejection counts (`admission.rejections`)
    connections: ConnectionTable  # accepted connections: limits, shedding, their counts
    cdrs: CdrQueue  # the CDR steps of every call, until the BillingStore has made them durable
    conn_settings: ConnectionSettings
    dispatcher: Dispatcher
    table: RouteTable
    gateways: tuple[Gateway, ...]
    deck: RateDeck | None = None
    udp: UdpCounters = field(default_factory=UdpCounters)  # the UDP sockets' counts (UdpStats)
    link_settings: LinkSettings = field(default_factory=LinkSettings)
    reloads: int = 0
    reload_lock: trio.Lock = field(default_factory=trio.Lock)


# --- before anything is created ------------------------------------------------------------------


def check_start(config: Config) -> RateDeck | None:
    """What must hold before the node creates anything; returns the rate deck, read once for the run.

    Checks that ``sip.listen`` can be bound now (a busy port is named, rather than found by the
    listener after the database was created and migrated) and reads ``billing.rate_deck`` (a bad
    deck is named with its file and line). Raises StartError. Blocking: call it from a thread or
    before the event loop.
    """
    check_listen("sip.listen", config.sip.listen)
    path = config.billing.rate_deck
    if path is None:
        if config.routing.policy == "least_cost":
            log.warning("routing.policy is least_cost but billing.rate_deck is not set: without prices, "
                        "gateways are ordered by priority and weight")
        return None
    try:
        return read_deck_file(path, plan=config.billing.default_rate_plan, currency=config.billing.currency)
    except BillingError as exc:
        raise StartError(f"billing.rate_deck: {exc}") from None


def check_listen(key: str, address: Address) -> None:
    """Raise StartError naming `key` and `address` unless a TCP listener could bind it now.

    Binds and closes a socket with the options trio's listeners use (SO_REUSEADDR; v6-only for
    IPv6), so a port another process listens on is refused here and a port in TIME_WAIT is not.
    """
    if is_inherited("tcp", address.host, address.port):
        return  # a worker's: its supervisor bound the address for it (switchd.workers)
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartError(f"{key} = {address}: cannot resolve {address.host!r}: {exc.strerror}") from None
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise StartError(f"{key} = {address}: cannot listen there: {exc.strerror or exc}") from None


# --- building the tree -----------------------------------------------------------------------------


def build_app(config: Config, *, deck: RateDeck | None = None) -> Application:
    """The switchd Application for `config` (see the module docstring for the tree and why).

    `deck` is ``billing.rate_deck`` as `check_start` read it; None with a deck configured reads
    it here. Nothing starts here: run it with ``await switchd.otp.run_async(app)`` (or `serve`),
    or start ``app.children`` under a Supervisor of your own in a test. ``app.config`` is the
    `Runtime` (its ``admission`` shows the drain; its ``config`` is `config`).
    """
    if deck is None and config.billing.rate_deck is not None:
        deck = read_deck_file(config.billing.rate_deck, plan=config.billing.default_rate_plan,
                              currency=config.billing.currency)
    conn_settings = config.sip.connection_settings()
    admission = config.admission()
    connections = config.sip.connection_table(admission.rejections)
    cdrs = CdrQueue()  # outlives any one BillingStore: a restarted store finds the steps still here
    acl = config.acl_lists()
    dispatcher = Dispatcher(session_spec=call_session_specs(config.call_settings(cdrs)), admission=admission,
                            calls=CALLS, acl=acl, authenticator=config.authenticator(_account),
                            challenge_calls=config.challenges_calls(), registrar=config.registrar.enabled)
    if not config.challenges_calls():
        log.info("new calls are not challenged: %s", "auth.enabled is false" if config.auth.enabled is False
                 else "no sip.domain and no acl.trusted (set either, or auth.enabled = true)")
    gateways = _all_gateways(config.routing.gateways, config.routing.table)
    sip = config.sip
    udp = sip.listen_udp
    # UDP B-legs leave from the first UDP address: the one CallSettings.udp_address names in their Via.
    link_settings = LinkSettings(udp_socket=udp_socket_name(str(udp[0])) if udp else None)
    contact_link = partial(contact_link_spec, conn_settings=conn_settings, dispatch=dispatcher,
                           link_settings=link_settings)
    runtime = Runtime(config, admission, connections, cdrs, conn_settings, dispatcher, config.routing.table,
                      gateways, deck, UdpCounters(rejections=admission.rejections), link_settings)
    # the event loop's lateness, measured when admission looks at it (limits.max_loop_lag)
    lag = [] if admission.loop_lag is None else [lag_monitor_spec(admission.loop_lag,
                                                                   interval=config.limits.loop_lag_interval)]
    children = [
        *lag,
        ChildSpec(id="events", start=partial(EventManager.start_link, name="events")),
        billing_child_spec(lambda: config.billing_store(runtime.deck), queue=cdrs),
        router_child_spec(lambda: runtime.table, policy=config.routing.policy, costs=_costs(deck)),
        location_spec(config.registrar_settings(acl, contact_link)),
        ChildSpec(id=CALLS, start=partial(DynamicSupervisor.start_link, max_children=config.limits.max_calls,
                                          name=CALLS),
                  type=ChildType.SUPERVISOR, shutdown=math.inf),
        collector.sweeper_spec(_calls_up),  # the cycles the collector's freezing defers, swept when quiet
        sip_service_spec(sip.listen.host, sip.listen.port, gateways, conn_settings, dispatcher, link_settings,
                         table=connections, udp=[(a.host, a.port) for a in udp], udp_dispatch=dispatcher,
                         udp_settings=sip.udp_settings(config.timers.sip_timers()), udp_counters=runtime.udp),
        registrations_spec(gateways, config.trunk_settings()),
        reloader_child_spec(partial(reload_config, runtime)),
        api_spec(api_settings(config), node_view(runtime)),  # last: it only reads the tree
    ]
    return Application(
        name=NAME, children=children,
        flags=SupervisorFlags(Strategy.ONE_FOR_ONE, max_restarts=5, max_seconds=10.0),
        prep_stop=partial(_prep_stop, runtime),
        config=runtime,
        # the drain, then the remaining sessions' cleanup (BYE, CDR close): never cut short by this
        prep_stop_timeout=config.timers.drain_timeout + 30.0,
    )


async def _prep_stop(runtime: Runtime, app: Application) -> None:
    await drain_node(runtime.admission, runtime.config.timers.drain_timeout)


async def _account(username: str) -> AccountInfo | None:
    """The digest check's account lookup: the registrar's accounts (in memory)."""
    return await account(username)


def _all_gateways(configured: tuple[Gateway, ...], table: RouteTable) -> tuple[Gateway, ...]:
    by_name = {gw.name: gw for gw in configured}
    for gw in table.gateways:
        by_name.setdefault(gw.name, gw)
    return tuple(by_name.values())


def _costs(deck: RateDeck | None) -> CostFn | None:
    """Prices per minute from the rate deck, for the least_cost policy; None without a deck."""
    if deck is None:
        return None
    prices: dict[str, Decimal] = {t.prefix: t.price_per_minute for t in deck.tariffs}
    return costs_from_rates({deck.plan: prices}, default_plan=deck.plan)


# --- the HTTP API ----------------------------------------------------------------------------------


def api_settings(config: Config) -> ApiSettings:
    """The ApiSettings of this node, from `config` ([api])."""
    api = config.api
    return ApiSettings(host=api.listen.host, port=api.listen.port, token=api.token, chaos=api.chaos,
                       trace_calls=api.trace_calls, trace_messages=api.trace_messages)


def node_view(runtime: Runtime) -> NodeView:
    """What the API reads of this node (its state objects) and may start (a reload)."""
    config = runtime.config
    return NodeView(node=config.node, version=__version__, admission=runtime.admission,
                    connections=runtime.connections, cdrs=runtime.cdrs, tap=runtime.conn_settings.tap,
                    database_url=config.database.url, reload=reload, reloads=lambda: runtime.reloads,
                    default_plan=config.billing.default_rate_plan, currency=config.billing.currency,
                    root=NAME, calls=CALLS)


# --- SIGHUP: what a reload does to this tree --------------------------------------------------------


async def reload_config(runtime: Runtime) -> ReloadResult:
    """Re-read routes, rates and accounts, validate them, and swap them in; an invalid file changes nothing.

    Order: the routes are read and validated first (nothing touched yet); then the rate deck is
    read (once) and handed to the billing store (which keeps the old deck when it cannot store
    the new one — and then the routes are not swapped either); then links are started for new
    gateways, and registrations for gateways whose `registration` is new, changed or gone
    (`update_registrations`); then the Router swaps table and costs in one message; then the
    registrar reads the accounts again. Calls in flight keep the routes they got. The Reloader
    (`switchd.switch.Reloader`) runs this on SIGHUP and `reload()`.
    """
    config = runtime.config
    async with runtime.reload_lock:
        try:
            table = await trio.to_thread.run_sync(reload_routes, config)
        except ConfigError as exc:
            log.error("reload refused, nothing changed: %s", exc)
            return ReloadResult(False, error=str(exc))
        rates: int | None = None
        deck = runtime.deck
        if config.billing.rate_deck is not None:
            try:
                deck = await trio.to_thread.run_sync(partial(
                    read_deck_file, config.billing.rate_deck, plan=config.billing.default_rate_plan,
                    currency=config.billing.currency))
                rates = await set_rates(deck)
            except (BillingError, OTPError) as exc:
                log.error("reload refused, nothing changed: rates: %s", exc)
                return ReloadResult(False, error=f"rates: {exc}")
        gateways = _all_gateways((), table)
        try:
            changed = await update_gateway_links(runtime.gateways, gateways, runtime.conn_settings,
                                                 runtime.dispatcher, runtime.link_settings)
            changed += await update_registrations(runtime.gateways, gateways, config.trunk_settings())
            await swap_table(table, costs=_costs(deck) if rates is not None else None)
        except OTPError as exc:
            log.error("reload failed while swapping: %s", exc)
            return ReloadResult(False, rates=rates, error=str(exc))
        runtime.table = table
        runtime.deck = deck
        runtime.gateways = _all_gateways(runtime.gateways, table)
        runtime.reloads += 1
        accounts = await _reload_accounts()
        log.info("reloaded: %d routes%s%s%s", len(table), "" if rates is None else f", {rates} tariffs",
                 "" if accounts is None else f", {accounts} accounts", "".join(f"; gateway {c}" for c in changed),
                 extra={"routes": len(table), "rates": rates, "accounts": accounts})
        return ReloadResult(True, routes=len(table), rates=rates, gateways=tuple(changed), accounts=accounts)


async def _reload_accounts() -> int | None:
    """Have the registrar read the accounts again; None (logged) when it cannot: the old ones stay."""
    try:
        return await reload_accounts()
    except (AccountsUnavailable, OTPError) as exc:
        log.warning("reload: accounts not read again: %s", exc)
        return None


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


async def serve(config: Config, *, deck: RateDeck | None = None,
                task_status: trio.TaskStatus[Pid] = trio.TASK_STATUS_IGNORED) -> int:
    """Migrate, then run the node until SIGTERM/SIGINT or ``otp.stop("switchd")``; returns the exit code.

    For in-process use (tests, `switchd demo`): ``await nursery.start(serve, config)`` hands back
    the root pid once the whole tree runs; it must run in the main thread (signal handlers).
    `deck`: what `check_start` returned. Exit codes as `switchd.otp.run_async`: 0 clean stop, 1
    the tree gave up, 2 it failed to start (2 also for a database that cannot be migrated).
    """
    try:
        claim = await trio.to_thread.run_sync(claim_node, config.database.url, config.node)
    except NodeClaimed as exc:  # a second `switchd run` of a live node: it must touch nothing
        log.error("%s", exc)
        return 2
    except (StoreUnavailable, OSError) as exc:
        log.error("cannot claim node %r: %s", config.node, exc)
        return 2
    with claim:
        try:
            await trio.to_thread.run_sync(migrate, config)
        except (MigrationError, OSError) as exc:
            log.error("cannot prepare the billing database: %s", exc)
            return 2
        lost: list[NodeClaimed] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_keep_claim, claim, nursery.cancel_scope, lost)
            code = await run_async(build_app(config, deck=deck), task_status=task_status)
            nursery.cancel_scope.cancel()
        return 1 if lost else code


async def _keep_claim(claim: NodeClaim, node: trio.CancelScope, lost: list[NodeClaimed]) -> None:
    """Check the node claim every few seconds; if another process took it, stop the node at once.

    Only a PostgreSQL claim can be lost (its connection dropped and another node took the lock
    meanwhile): two nodes of one name would then recover and close each other's calls, so this
    node stops (exit 1) rather than bill alongside the other. `lost` gets the error.
    """
    try:
        await claim.keep()
    except NodeClaimed as exc:
        log.critical("node claim lost, stopping at once: %s", exc)
        lost.append(exc)
        node.cancel(reason=f"node claim lost: {exc}")


async def _calls_up() -> int:
    return (await count_children(CALLS)).active


class _ThenSettleGc:
    """A task status for `serve` that settles the collector (`switchd.collector.settle`) once the tree is up."""

    def started(self, value: object = None) -> None:
        collector.settle()


def run_daemon(config: Config, *, hold: Callable[[], AbstractContextManager[object]] = nullcontext) -> int:
    """`switchd run`: the node for `config` in the foreground, until SIGTERM/SIGINT; the exit code.

    Checks what must hold before anything is created (`check_start`: raises StartError, one
    line naming the key or address), upgrades the billing schema to head, starts the tree (the
    billing store closes CDRs a previous run left open as `recovered`), drains calls on the first
    SIGTERM/SIGINT (new calls get 503; up to ``timers.drain_timeout``; the rest get BYE) and stops
    at once on a second. SIGHUP reloads routes, rates and accounts. Returns 0 after a clean stop, 1 if the tree
    gave up, 2 if it could not start (the reason is logged), 130 if interrupted while migrating.
    `hold` is entered once the checks passed and held while the node runs (`switchd run`'s
    pidfile): nothing of it exists when the node could not start. Call it from the main thread;
    log handlers are the caller's (switchd.cli installs them).
    """
    deck = check_start(config)  # before the first log line, so a refusal is the one line printed
    log.info("configuration %s", config.path or "(not from a file)", extra={"config": str(config.path)})
    with hold():
        try:
            return trio.run(partial(serve, config, deck=deck, task_status=_ThenSettleGc()))
        except KeyboardInterrupt:  # ^C before the signal handlers were installed (during the migration)
            log.warning("interrupted while starting")
            return 130
        finally:
            collector.release()
