"""The registrar: which accounts exist and where their phones are, held in memory and kept in the database.

```
location          Supervisor, rest_for_one
├── registrar_db  RegistrarDb (GenServer): the database side, in a thread of its own
└── registrar     Registrar (GenServer): accounts and bindings in memory; every lookup answered at once
```

Why two processes: a lookup (an account for a digest check, a user's contacts for a call) must
never wait behind the database — an SQLite file a CLI holds locked, a PostgreSQL failover. The
Registrar only ever touches memory; what it changes it casts to RegistrarDb, which writes in the
order it was told (one user's whole set of contacts per write, so a later write always wins), and
which re-reads the accounts every ``accounts_refresh`` seconds and casts the snapshot back. Why
rest_for_one: a Registrar restarted alone reloads from RegistrarDb, which answers after every
write queued before (its mailbox is in order), so nothing acknowledged is lost; a RegistrarDb
restarted takes the Registrar with it, which then reloads from the database.

What a phone is told is what is kept: a REGISTER's 200 goes out once the Registrar has the new
bindings (memory); the write follows within milliseconds. A crash in between loses that refresh
(the phone refreshes again before its binding would expire); a database outage keeps the writes
queued (retried at every refresh) while registrations and calls go on from memory.

Bindings expire on time: an expired binding is never returned (every lookup filters by the
clock), and a sweep every ``sweep_interval`` seconds drops them from memory and the database.
Times in memory are trio's clock (MockClock in tests); the database keeps wall-clock UTC, converted
with the offset between the two taken at start.

Locating the user of a Request-URI (`locate`), for the router's `route_call`:

==================  =============================================================================
NotOurs             not sip:/sips:, no user part, a host that is not one of ``domains``, or a user
                    part that is no account but a number to dial: routed by prefix as before
UnknownUser         a user of our domain that is no enabled account and no number: 404
Unregistered        an enabled account with no live binding (none the outbound ACL still allows): 480
Registered          its contacts, best first (q, then the most recent): calls try them in order
==================  =============================================================================

For each contact it hands out, the Registrar makes sure a link process to the contact's address
runs under ``contacts`` (``contact_link`` builds its child spec: a GatewayLink that exits once
unused), so the call's B-leg can be sent there by name like any gateway's.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import trio
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from switchd.billing import (
    AccountInfo,
    StoredBinding,
    delete_expired_bindings,
    list_accounts,
    load_bindings,
    open_engine,
    replace_bindings,
)
from switchd.otp import (
    Caller,
    ChildSpec,
    ChildType,
    ExitReason,
    GenServer,
    NoReply,
    OTPError,
    Reply,
    Restart,
    Stop,
    Strategy,
    Supervisor,
    SupervisorFlags,
    TimerRef,
    call,
    cast,
    self_pid,
    send_after,
    start_child,
    whereis,
)
from switchd.sip import RemoteProtocolError, SipUri, dialled_number, parse_uri

from ._acl import Acl
from ._bindings import Binding, RegisterLimits, RegisterRefusal, RegisterRequest, alive, apply_register
from ._errors import AccountsUnavailable
from ._routing import Gateway, Transport
from ._wire import gateway_name

log = logging.getLogger(__name__)

NAME = "registrar"
DB_NAME = "registrar_db"
LOCATION = "location"
_NUMBER = re.compile(r"\+?[0-9*#]+")
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrarSettings:
    """What the registrar of a node is configured with; app.py builds it from the Config.

    ``node``: whose bindings these are in the database. ``realm``: the accounts it serves.
    ``domains``: the hosts whose users it serves (lower case; IPv6 in brackets); ``address_only``
    those of them that only the node's listen address names. ``limits``: the
    REGISTER intervals and contact count. ``acl``: its outbound half decides which contacts calls
    may go to. ``database_url``: None keeps everything in memory (tests). ``accounts_refresh``:
    seconds between re-reads of the accounts, 10.0. ``sweep_interval``: seconds between sweeps of
    expired bindings, 30.0. ``contact_link``: the child spec of a link to a contact's address, or
    None (no links are started). ``contacts``: the DynamicSupervisor they run under, "contacts".
    ``load_timeout``: seconds the Registrar waits for its start-up load, 30.0.
    """

    node: str = "switchd"
    realm: str = "switchd"
    domains: frozenset[str] = frozenset()
    # Of `domains`, the ones only the node's own address names (no configured domain): a name with
    # no account there is not refused but routed by prefix, as SIP tools dial `service@<address>`.
    address_only: frozenset[str] = frozenset()
    limits: RegisterLimits = field(default_factory=RegisterLimits)
    acl: Acl = field(default_factory=Acl)
    database_url: str | None = None
    accounts_refresh: float = 10.0
    sweep_interval: float = 30.0
    contact_link: Callable[[Gateway], ChildSpec] | None = field(default=None, compare=False)
    contacts: str = "contacts"
    load_timeout: float = 30.0


# --- what a lookup finds -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotOurs:
    """The Request-URI names no user of ours: route the call by its number."""


@dataclass(frozen=True, slots=True)
class UnknownUser:
    """A user of our domain that no enabled account has (and that is no number to dial)."""

    user: str


@dataclass(frozen=True, slots=True)
class Unregistered:
    """An account with no contact to call now."""

    user: str


@dataclass(frozen=True, slots=True)
class Registered:
    """An account's contacts, best first."""

    user: str
    contacts: tuple[Binding, ...]


Location = NotOurs | UnknownUser | Unregistered | Registered


def contact_gateway(binding: Binding) -> Gateway:
    """The `Gateway` a call to `binding` goes through, named by transport and address.

    Over TCP (and anything but UDP) it is the Contact's host and port: switchd opens a connection
    there. A phone registered over UDP is reached where its REGISTER came from (``binding.source``,
    RFC 3581 symmetric signalling: a phone behind NAT is reached through its binding, and a Contact
    naming another host aims nothing at it), from the node's UDP socket, and only over UDP.
    """
    uri = binding.uri
    if binding.transport == "udp":
        source = _host_port(binding.source)
        if source is not None:
            host, port = source
            label = f"[{host}]" if ":" in host else host
            return Gateway(name=f"contact:udp:{label}:{port}", host=host, port=port, transport=Transport.UDP,
                           tcp_fallback=False)
    host = uri.host.removeprefix("[").removesuffix("]")
    secure = uri.scheme == "sips" or binding.transport == "tls"
    port = uri.port or (5061 if secure else 5060)
    transport = Transport.UDP if binding.transport == "udp" else Transport.TCP
    return Gateway(name=f"contact:{binding.transport}:{uri.host}:{port}", host=host, port=port, transport=transport,
                   tcp_fallback=transport is Transport.TCP)


def _host_port(text: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` as (host, port); None for anything else (an address without a port)."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65_536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None  # a bare IPv6 address: its last group is no port
    return (host, int(port)) if host else None


# --- the Registrar -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Account:
    username: str


@dataclass(frozen=True, slots=True)
class _Register:
    request: RegisterRequest


@dataclass(frozen=True, slots=True)
class _Locate:
    uri: SipUri


@dataclass(frozen=True, slots=True)
class _Bindings:
    username: str


@dataclass(frozen=True, slots=True)
class _ReloadAccounts:
    pass


@dataclass(frozen=True, slots=True)
class Accounts:
    """RegistrarDb → Registrar: the accounts of the realm as the database has them now."""

    snapshot: Mapping[str, AccountInfo]


@dataclass(frozen=True, slots=True)
class _Sweep:
    pass


@dataclass(slots=True)
class RegistrarState:
    """What the Registrar holds between messages."""

    settings: RegistrarSettings
    accounts: dict[str, AccountInfo]
    bindings: dict[str, tuple[Binding, ...]]
    wall_offset: float  # time.time() - trio.current_time(), taken at start
    registrations: int = 0  # REGISTERs that changed something, for status lines
    sweep: TimerRef | None = None


class Registrar(GenServer[RegistrarState]):
    """Accounts and bindings in memory (see the module docstring); registered as "registrar"."""

    async def init(self, settings: RegistrarSettings,
                   accounts: Mapping[str, AccountInfo] | None = None) -> RegistrarState:
        """Start from the database (through RegistrarDb) or, without one, from `accounts` and no bindings.

        A database that cannot be read is logged and the Registrar starts empty: the next account
        refresh brings the accounts, and phones register again.
        """
        state = RegistrarState(settings, dict(accounts or {}), {}, time.time() - trio.current_time())
        if settings.database_url is not None:
            try:
                loaded = await call(DB_NAME, _Load(), timeout=settings.load_timeout)
            except OTPError as exc:
                log.error("registrar: cannot load accounts and bindings, starting empty: %s", exc)
            else:
                if isinstance(loaded, _Loaded):
                    state.accounts = dict(loaded.accounts)
                    state.bindings = self._from_database(loaded.bindings, state)
                else:
                    log.error("registrar: cannot load accounts and bindings, starting empty: %s", loaded)
        state.sweep = send_after(self_pid(), _Sweep(), settings.sweep_interval)
        log.info("registrar started: %d accounts, %d users registered", len(state.accounts), len(state.bindings),
                 extra={"accounts": len(state.accounts), "registered": len(state.bindings)})
        return state

    async def handle_call(self, request: object, caller: Caller,
                          state: RegistrarState) -> Reply[RegistrarState]:
        match request:
            case _Account(username):
                return Reply(state.accounts.get(username), state)
            case _Locate(uri):
                return Reply(await self._locate(uri, state), state)
            case _Register(register):
                return Reply(self._register(register, state), state)
            case _Bindings(username):
                return Reply(alive(state.bindings.get(username, ()), trio.current_time()), state)
            case _ReloadAccounts():
                snapshot = await call(DB_NAME, _LoadAccounts(), timeout=state.settings.load_timeout)
                if isinstance(snapshot, _LoadFailed):
                    return Reply(snapshot, state)  # the caller raises it; the accounts stay as they were
                self._take_accounts(snapshot, state)
                return Reply(len(state.accounts), state)
        raise ValueError(f"registrar: unknown request {request!r}")

    async def handle_cast(self, request: object, state: RegistrarState) -> NoReply[RegistrarState]:
        if isinstance(request, Accounts):
            self._take_accounts(request.snapshot, state)
            return NoReply(state)
        raise ValueError(f"registrar: unknown cast {request!r}")

    async def handle_info(self, msg: object, state: RegistrarState) -> NoReply[RegistrarState] | Stop[RegistrarState]:
        if isinstance(msg, _Sweep):
            now = trio.current_time()
            for user, bindings in list(state.bindings.items()):
                left = alive(bindings, now)
                if left != bindings:
                    self._store(user, left, state)
            state.sweep = send_after(self_pid(), _Sweep(), state.settings.sweep_interval)
            return NoReply(state)
        return await super().handle_info(msg, state)

    def format_status(self, state: RegistrarState) -> str:
        contacts = sum(len(b) for b in state.bindings.values())
        return f"{len(state.accounts)} accounts, {len(state.bindings)} registered, {contacts} contacts"

    # -- the work -------------------------------------------------------------------------------------

    def _register(self, request: RegisterRequest, state: RegistrarState) -> tuple[Binding, ...] | RegisterRefusal:
        if request.domain not in state.settings.domains:  # §10.3 step 1: we do not forward REGISTERs
            return RegisterRefusal(404, "Domain Not Served", f"domain {request.domain!r} is not served here")
        account = state.accounts.get(request.user)
        if account is None or not account.enabled:
            return RegisterRefusal(404, None, f"no enabled account {request.user!r}")
        now = trio.current_time()
        current = alive(state.bindings.get(request.user, ()), now)
        result = apply_register(current, request, now=now, limits=state.settings.limits)
        if isinstance(result, RegisterRefusal):
            return result
        if result != current:  # a refresh changes expires_at: written too
            state.registrations += 1
            self._store(request.user, result, state)
            log.info("%s: %d contact(s) registered", request.user, len(result),
                     extra={"user": request.user, "contacts": len(result), "source": request.source})
        return result

    def _store(self, user: str, bindings: tuple[Binding, ...], state: RegistrarState) -> None:
        """Keep `bindings` as `user`'s in memory and have RegistrarDb write them."""
        if bindings:
            state.bindings[user] = bindings
        else:
            state.bindings.pop(user, None)
        if state.settings.database_url is None:
            return
        stored = tuple(self._to_database(user, b, state) for b in bindings)
        try:
            cast(DB_NAME, _Persist(user, stored))
        except OTPError as exc:  # restarting: rest_for_one restarts us too, and we reload
            log.warning("registrar: bindings of %s not written: %s", user, exc, extra={"user": user})

    def _take_accounts(self, snapshot: Mapping[str, AccountInfo], state: RegistrarState) -> None:
        """Use the accounts of `snapshot`; a user whose account went (or was disabled) loses its bindings."""
        state.accounts = dict(snapshot)
        for user in [u for u in state.bindings if not (a := state.accounts.get(u)) or not a.enabled]:
            log.info("%s: account gone or disabled, its contacts are dropped", user, extra={"user": user})
            self._store(user, (), state)

    async def _locate(self, uri: SipUri, state: RegistrarState) -> Location:
        settings = state.settings
        if not uri.is_sip or not uri.user or uri.host.lower() not in settings.domains:
            return NotOurs()
        user = uri.user
        account = state.accounts.get(user)
        if account is None or not account.enabled:
            number = dialled_number(uri)
            if (number and _NUMBER.fullmatch(number)) or uri.host.lower() in settings.address_only:
                return NotOurs()
            return UnknownUser(user)
        now = trio.current_time()
        contacts = tuple(b for b in alive(state.bindings.get(user, ()), now)
                         if settings.acl.contact_refusal(b.uri.host) is None)
        if not contacts:
            return Unregistered(user)
        for binding in contacts:
            await self._ensure_link(contact_gateway(binding), settings)
        return Registered(user, contacts)

    async def _ensure_link(self, gateway: Gateway, settings: RegistrarSettings) -> None:
        if settings.contact_link is None or whereis(gateway_name(gateway.name)) is not None:
            return
        try:
            await start_child(settings.contacts, settings.contact_link(gateway), timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - the call hears GatewayFailed for this contact; we go on
            log.warning("registrar: no link to %s: %r", gateway.address, exc, extra={"gateway": gateway.name})

    # -- wall clock <-> trio clock ----------------------------------------------------------------------

    def _to_database(self, user: str, b: Binding, state: RegistrarState) -> StoredBinding:
        def wall(t: float) -> datetime:
            return datetime.fromtimestamp(t + state.wall_offset, UTC)

        return StoredBinding(user, state.settings.realm, b.contact, b.q, wall(b.expires_at), b.call_id, b.cseq,
                             b.transport, b.source, wall(b.registered_at))

    def _from_database(self, rows: tuple[StoredBinding, ...], state: RegistrarState) -> dict[str, tuple[Binding, ...]]:
        by_user: dict[str, list[Binding]] = {}
        for row in rows:
            try:
                uri = parse_uri(row.contact, "Contact")
            except RemoteProtocolError:
                log.warning("registrar: a stored contact of %s does not parse; dropped", row.username,
                            extra={"user": row.username})
                continue
            expires_at = row.expires_at.timestamp() - state.wall_offset
            registered_at = row.registered_at.timestamp() - state.wall_offset
            by_user.setdefault(row.username, []).append(Binding(
                row.contact, uri, row.q, expires_at, row.call_id, row.cseq, row.transport, row.source, registered_at))
        return {user: tuple(sorted(bs, key=lambda b: (-b.q, -b.registered_at))) for user, bs in by_user.items()
                if user in state.accounts}


# --- the database side -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Load:
    pass


@dataclass(frozen=True, slots=True)
class _LoadAccounts:
    pass


@dataclass(frozen=True, slots=True)
class _Loaded:
    accounts: Mapping[str, AccountInfo]
    bindings: tuple[StoredBinding, ...]


@dataclass(frozen=True, slots=True)
class _LoadFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class _Persist:
    username: str
    bindings: tuple[StoredBinding, ...]


@dataclass(frozen=True, slots=True)
class _Refresh:
    pass


@dataclass(slots=True)
class _DbState:
    settings: RegistrarSettings
    engine: Engine
    sessions: sessionmaker[Session]
    limiter: trio.CapacityLimiter
    pending: dict[str, tuple[StoredBinding, ...]] = field(default_factory=dict)  # not written yet, in order
    failing: bool = False  # the last write or read failed (logged once until it works again)


class RegistrarDb(GenServer[_DbState]):
    """The registrar's database side (see the module docstring); registered as "registrar_db"."""

    async def init(self, settings: RegistrarSettings) -> _DbState:
        assert settings.database_url is not None
        engine = open_engine(settings.database_url)
        send_after(self_pid(), _Refresh(), settings.accounts_refresh)
        return _DbState(settings, engine, sessionmaker(engine), trio.CapacityLimiter(1))

    async def handle_call(self, request: object, caller: Caller, state: _DbState) -> Reply[_DbState]:
        match request:
            case _Load():
                await self._flush(state)
                return Reply(await self._read(state, self._load), state)
            case _LoadAccounts():
                return Reply(await self._read(state, self._accounts), state)
        raise ValueError(f"registrar_db: unknown request {request!r}")

    async def handle_cast(self, request: object, state: _DbState) -> NoReply[_DbState]:
        if isinstance(request, _Persist):
            state.pending.pop(request.username, None)  # the newest set of a user is the one to write
            state.pending[request.username] = request.bindings
            await self._flush(state)
            return NoReply(state)
        raise ValueError(f"registrar_db: unknown cast {request!r}")

    async def handle_info(self, msg: object, state: _DbState) -> NoReply[_DbState] | Stop[_DbState]:
        if isinstance(msg, _Refresh):
            await self._flush(state)
            snapshot = await self._read(state, self._accounts)
            if not isinstance(snapshot, _LoadFailed):
                try:
                    cast(NAME, Accounts(snapshot))
                except OTPError:
                    pass  # the Registrar is (re)starting: it loads for itself
            send_after(self_pid(), _Refresh(), state.settings.accounts_refresh)
            return NoReply(state)
        return await super().handle_info(msg, state)

    async def terminate(self, reason: ExitReason, state: _DbState) -> None:
        await self._flush(state)
        state.engine.dispose()

    def format_status(self, state: _DbState) -> str:
        return f"{len(state.pending)} users to write" + (", database failing" if state.failing else "")

    # -- in the thread --------------------------------------------------------------------------------

    def _load(self, state: _DbState) -> _Loaded:
        with state.sessions.begin() as session:
            accounts = self._accounts_in(session, state)
            rows = load_bindings(session, state.settings.node, datetime.now(UTC))
        return _Loaded(accounts, tuple(rows))

    def _accounts(self, state: _DbState) -> Mapping[str, AccountInfo]:
        with state.sessions() as session:
            return self._accounts_in(session, state)

    def _accounts_in(self, session: Session, state: _DbState) -> dict[str, AccountInfo]:
        return {a.username: a for a in list_accounts(session, state.settings.realm)}

    def _write(self, state: _DbState, batch: dict[str, tuple[StoredBinding, ...]]) -> None:
        node, realm = state.settings.node, state.settings.realm
        with state.sessions.begin() as session:
            for username, bindings in batch.items():
                replace_bindings(session, node, username, realm, bindings)
            delete_expired_bindings(session, node, datetime.now(UTC))

    # -- around the thread ----------------------------------------------------------------------------

    async def _read(self, state: _DbState, read: Callable[[_DbState], T]) -> T | _LoadFailed:
        try:
            result = await trio.to_thread.run_sync(partial(read, state), limiter=state.limiter)
        except SQLAlchemyError as exc:
            self._failed(state, "read", exc)
            return _LoadFailed(str(exc).splitlines()[0])
        self._recovered(state)
        return result

    async def _flush(self, state: _DbState) -> None:
        """Write every pending user's bindings in one transaction; on failure keep them for the next try."""
        if not state.pending:
            return
        batch, state.pending = state.pending, {}
        try:
            await trio.to_thread.run_sync(partial(self._write, state, batch), limiter=state.limiter)
        except SQLAlchemyError as exc:
            state.pending = {**batch, **state.pending}  # newer sets (cast meanwhile) win
            self._failed(state, "write", exc)
            return
        self._recovered(state)

    def _failed(self, state: _DbState, what: str, exc: SQLAlchemyError) -> None:
        if not state.failing:
            log.error("registrar: database %s failed, retried every %gs: %s", what, state.settings.accounts_refresh,
                      str(exc).splitlines()[0])
        state.failing = True

    def _recovered(self, state: _DbState) -> None:
        if state.failing:
            log.warning("registrar: database works again")
        state.failing = False


# --- the supervisor and the client API ----------------------------------------------------------------


def location_spec(settings: RegistrarSettings, *, accounts: Mapping[str, AccountInfo] | None = None) -> ChildSpec:
    """The child spec of "location" (rest_for_one): RegistrarDb (when there is a database), then the Registrar."""
    children = []
    if settings.database_url is not None:
        children.append(ChildSpec(id=DB_NAME, start=partial(RegistrarDb.start_link, settings, name=DB_NAME),
                                  shutdown=5.0))
    children.append(ChildSpec(id=NAME, start=partial(Registrar.start_link, settings, accounts, name=NAME)))
    flags = SupervisorFlags(Strategy.REST_FOR_ONE, max_restarts=5, max_seconds=10.0)
    return ChildSpec(id=LOCATION, start=partial(Supervisor.start_link, children, flags, name=LOCATION),
                     restart=Restart.PERMANENT, type=ChildType.SUPERVISOR, shutdown=math.inf)


async def account(username: str, *, timeout: float = 1.0) -> AccountInfo | None:
    """The account `username` of the registrar's realm, or None (raises OTPError when it is not answering)."""
    found: AccountInfo | None = await call(NAME, _Account(username), timeout=timeout)
    return found


async def register(request: RegisterRequest, *, timeout: float = 2.0) -> tuple[Binding, ...] | RegisterRefusal:
    """Apply a checked, authenticated REGISTER: the user's bindings after it, or why nothing changed."""
    result: tuple[Binding, ...] | RegisterRefusal = await call(NAME, _Register(request), timeout=timeout)
    return result


async def locate(uri: SipUri, *, timeout: float = 1.0) -> Location:
    """Whose the Request-URI `uri` is, and where to reach them (see the module docstring)."""
    found: Location = await call(NAME, _Locate(uri), timeout=timeout)
    return found


async def bindings_of(username: str, *, timeout: float = 1.0) -> tuple[Binding, ...]:
    """`username`'s live bindings, best first."""
    found: tuple[Binding, ...] = await call(NAME, _Bindings(username), timeout=timeout)
    return found


async def reload_accounts(*, timeout: float = 10.0) -> int:
    """Re-read the accounts now (what SIGHUP does); how many there are. Raises when the database cannot be read."""
    count: int | _LoadFailed = await call(NAME, _ReloadAccounts(), timeout=timeout)
    if isinstance(count, _LoadFailed):
        raise AccountsUnavailable(f"accounts not reloaded: {count.reason}")
    return count
