"""switchd.workers: `switchd run --workers N`, N switchd nodes sharing the SIP port, and their supervisor.

```
workers                 Supervisor (root), one_for_one, MAX_RESTARTS restarts in PERIOD s
├── w0                  Worker: the OS process `python -m switchd run --worker 0`   PERMANENT
├── w1 …                one per worker, each a whole node named <node>.w<i>
└── signals             forwards SIGHUP to every worker                              PERMANENT
```

The OTP pattern one level up: each worker is a whole switchd node (its own tree, node name
``<node>.w<i>``, its own node claim, CDR recovery and HTTP API on the [api] port + i; see
`worker_config`), and this process supervises the OS processes as a Supervisor supervises trio
tasks. A worker that exits while no stop was asked for is restarted under the same name — its
restart takes the node claim the kernel dropped with the dead process and closes the CDRs the
dead one left open as `recovered` — and the restarts count toward the intensity: one too many
stops every worker and this process exits 1.

The SIP addresses are bound here, once per worker, with SO_REUSEPORT, before any worker starts;
worker i inherits socket i of each address (switchd.switch's `_inherited`). So the kernel's
SO_REUSEPORT group never changes while the supervisor runs: a dead worker's socket stays open
here, connections and datagrams hashed to it wait in its queue for the restarted worker, and no
other worker's UDP peer is re-hashed elsewhere. A TCP connection stays with the worker that
accepted it (and so does every dialog on it); a UDP peer's datagrams go to the worker its
4-tuple hashes to — one worker as long as the peer keeps its source address and port.

Signals: SIGTERM/SIGINT → every worker gets SIGTERM at once and drains itself (`drain_node`);
this process exits when all have stopped. A second SIGTERM/SIGINT is forwarded too, cutting each
worker's drain short. SIGHUP is forwarded: each worker reloads its routes and rates. The workers
run in a process group of their own, so a terminal's ^C reaches this process alone and each
worker sees one SIGTERM, not a SIGINT from the terminal and a SIGTERM from here.

What is not shared: everything in memory (calls, admission limits, counters, the trace, gateway
links — each worker has its own); `limits.*` apply per worker. What is shared: the SIP
addresses and the billing database. See docs/scale.md.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import trio

from switchd.app import StartError, check_start, migrate
from switchd.billing import MigrationError
from switchd.config import Address, Config
from switchd.otp import Application, ChildSpec, Process, Strategy, SupervisorFlags, run_async
from switchd.switch import SOCKETS_ENV, InheritedSocket, Transport, encode_sockets

log = logging.getLogger(__name__)

NAME = "workers"
"""The supervisor application's name (its root supervisor registers under it)."""

MAX_RESTARTS = 5
PERIOD = 60.0
"""Worker restarts allowed within PERIOD seconds; one more stops all workers (exit 1)."""

PARENT_ENV = "SWITCHD_SUPERVISOR_FD"
"""Names to a worker the pipe whose end-of-file says its supervisor died (see `die_with_supervisor`)."""

_BACKLOG = 65_535  # as trio's listeners: the kernel caps it at net.core.somaxconn
_STOP_GRACE = 30.0  # seconds a worker may take past its drain_timeout to stop (its prep_stop margin)


class WorkerExited(Exception):
    """A worker process exited while no stop was asked for; the supervisor restarts it."""


# --- the configuration of worker i -----------------------------------------------------------------


def worker_count(setting: int | str) -> int:
    """The number of workers `setting` asks for: a count ≥ 1, or "auto" / 0 for one per core.

    Raises ValueError for anything else.
    """
    if setting in ("auto", 0):
        return os.cpu_count() or 1
    count = int(setting) if isinstance(setting, int) or setting.isdigit() else 0
    if count < 1:
        raise ValueError(f"workers must be a count >= 1 or 'auto', not {setting!r}")
    return count


def worker_config(config: Config, index: int) -> Config:
    """The configuration worker `index` runs: node ``<node>.w<index>``, API on the [api] port + index.

    Its pidfile is the [api] pidfile with ``.w<index>`` before the suffix (``switchd.w0.pid``);
    everything else is `config` as written. An API port 0 (any free port) stays 0.
    """
    api = config.api
    port = api.listen.port + index if api.listen.port else 0
    pidfile = api.pidfile.with_name(f"{api.pidfile.stem}.w{index}{api.pidfile.suffix}")
    return replace(config, node=f"{config.node}.w{index}",
                   api=replace(api, listen=Address(api.listen.host, port), pidfile=pidfile))


def check_workers(config: Config, count: int) -> None:
    """What must hold for `count` workers beyond a single node's `check_start`; raises StartError.

    A gateway reached over UDP is refused: its answers come back to the shared UDP address and the
    kernel hands every datagram of that gateway to one worker, not to the one that sent the request.
    """
    udp = [gw.name for gw in (*config.routing.gateways, *config.routing.table.gateways)
           if gw.transport is Transport.UDP]
    if count > 1 and udp:
        raise StartError(f"workers = {count}: gateway {udp[0]!r} is reached over UDP, whose answers would reach "
                         "one worker only; use transport = \"tcp\" for gateways, or workers = 1 (docs/scale.md)")
    if count > 1 and config.path is None:
        raise StartError(f"workers = {count}: the workers read the configuration from its file, and this one "
                         "was not loaded from a file")


# --- the shared sockets --------------------------------------------------------------------------


def bind_sockets(config: Config, count: int) -> list[list[tuple[InheritedSocket, socket.socket]]]:
    """For each worker, its SO_REUSEPORT socket of every SIP address (TCP listening, UDP bound).

    Raises StartError naming the address when one cannot be bound. A port 0 is bound once and
    the others join the port the kernel chose, so every worker shares it.
    """
    per_worker: list[list[tuple[InheritedSocket, socket.socket]]] = [[] for _ in range(count)]
    try:
        _bind_all(config, per_worker)
    except StartError:
        close_sockets(per_worker)
        raise
    return per_worker


def close_sockets(per_worker: list[list[tuple[InheritedSocket, socket.socket]]]) -> None:
    """Close every socket `bind_sockets` made."""
    for worker_sockets in per_worker:
        for _, sock in worker_sockets:
            sock.close()


def _bind_all(config: Config, per_worker: list[list[tuple[InheritedSocket, socket.socket]]]) -> None:
    addresses = [("tcp", config.sip.listen), *(("udp", a) for a in config.sip.listen_udp)]
    for kind, address in addresses:
        kind_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
        key = "sip.listen" if kind == "tcp" else "sip.listen_udp"
        try:
            infos = socket.getaddrinfo(address.host, address.port, type=kind_type, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise StartError(f"{key} = {address}: cannot resolve {address.host!r}: {exc.strerror}") from None
        for family, type_, proto, _, sockaddr in infos:
            for worker_sockets in per_worker:
                sock = _reuseport_socket(family, type_, proto, sockaddr, key, address)
                sockaddr = sock.getsockname()  # a port 0 is now the kernel's choice, for the others too
                entry = InheritedSocket("tcp" if kind == "tcp" else "udp", address.host, address.port,
                                        sock.fileno())
                worker_sockets.append((entry, sock))


def _reuseport_socket(family: int, type_: int, proto: int, sockaddr: tuple[Any, ...],
                      key: str, address: Address) -> socket.socket:
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        if type_ == socket.SOCK_STREAM:
            sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise StartError(f"{key} = {address}: cannot listen there: {exc.strerror or exc}") from None
    return sock  # not inheritable: only the worker it is for gets it (pass_fds)


def worker_program(config: Config) -> list[str]:
    """`python -m switchd run --config FILE`: a worker of `config`, before its ``--worker I``."""
    return [sys.executable, "-m", "switchd", "run", "--config", str(config.path)]


# --- the supervisor's tree ------------------------------------------------------------------------


@dataclass(slots=True)
class Workers:
    """What the supervisor's processes share: how to start worker i, and the OS processes running."""

    config: Config
    sockets: list[list[tuple[InheritedSocket, socket.socket]]]  # worker i's, by address (`bind_sockets`)
    program: Sequence[str]  # the command line of a worker before ``--worker I`` (`worker_program`)
    args: Sequence[str] = ()  # more `switchd run` options for every worker (logging)
    lifeline: int = -1  # the read end of the pipe whose write end only this process holds; -1: none
    running: dict[int, trio.Process] = field(default_factory=dict)
    stopping: bool = False
    started: int = 0  # worker processes started so far, restarts included

    def command(self, index: int) -> list[str]:
        """The command line of worker `index`."""
        return [*self.program, "--worker", str(index), *self.args]

    def environment(self, index: int) -> dict[str, str]:
        """The environment of worker `index`: ours, with its sockets and our pid."""
        lifeline = {PARENT_ENV: str(self.lifeline)} if self.lifeline >= 0 else {}
        return {**os.environ, SOCKETS_ENV: encode_sockets(e for e, _ in self.sockets[index]), **lifeline}

    def inherited(self, index: int) -> list[int]:
        """The descriptors worker `index` inherits: its sockets and the lifeline."""
        return [*(s.fileno() for _, s in self.sockets[index]), *([self.lifeline] if self.lifeline >= 0 else [])]

    def signal_all(self, signum: int) -> int:
        """Send `signum` to every worker process running; returns how many got it."""
        sent = 0
        for process in list(self.running.values()):
            if process.returncode is None:
                process.send_signal(signum)
                sent += 1
        return sent

    @property
    def stop_timeout(self) -> float:
        """Seconds a worker may take to stop after SIGTERM: its drain plus its own stop margin."""
        return self.config.timers.drain_timeout + _STOP_GRACE


async def _worker(workers: Workers, index: int) -> None:
    """One worker: start its OS process, wait for it, and turn an unasked-for exit into a crash.

    Cancelled (the tree stops, or gave up): SIGTERM, then SIGKILL after `stop_timeout` — a worker
    already told by `prep_stop` takes the second SIGTERM as "cut the drain short".
    """
    process = await trio.lowlevel.open_process(
        workers.command(index), env=workers.environment(index), pass_fds=workers.inherited(index),
        process_group=0)  # a terminal's ^C is for the supervisor alone (see the module docstring)
    workers.running[index] = process
    workers.started += 1
    log.info("worker %d started (pid %d)", index, process.pid, extra={"worker": index, "os_pid": process.pid})
    try:
        code = await process.wait()
    finally:
        if process.returncode is None:
            with trio.move_on_after(workers.stop_timeout, shield=True):
                process.send_signal(signal.SIGTERM)
                await process.wait()
            if process.returncode is None:
                log.warning("worker %d (pid %d) did not stop within %gs: killed", index, process.pid,
                            workers.stop_timeout, extra={"worker": index, "os_pid": process.pid})
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
        workers.running.pop(index, None)
    if workers.stopping:
        log.info("worker %d (pid %d) stopped, exit code %d", index, process.pid, code,
                 extra={"worker": index, "os_pid": process.pid, "exit_code": code})
        await trio.sleep_forever()  # stopped as asked: nothing to restart; the tree stop ends this
    raise WorkerExited(f"worker {index} (pid {process.pid}) exited: {_exit_text(code)}")


def _exit_text(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


async def _forward_sighup(workers: Workers) -> None:
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            sent = workers.signal_all(signal.SIGHUP)
            log.info("SIGHUP forwarded to %d workers", sent, extra={"workers": sent})


async def _prep_stop(workers: Workers, app: Application) -> None:
    """SIGTERM to every worker at once (each drains itself), then wait until all have exited."""
    workers.stopping = True
    sent = workers.signal_all(signal.SIGTERM)
    log.info("SIGTERM forwarded to %d workers: each drains its calls", sent, extra={"workers": sent})
    async with trio.open_nursery() as nursery:
        for process in list(workers.running.values()):
            nursery.start_soon(process.wait)


def build_supervisor(workers: Workers) -> Application:
    """The supervisor Application of `workers` (see the module docstring); run it with run_async."""
    children = [
        ChildSpec(id=f"w{index}", start=partial(Process.start_link, _worker, workers, index, name=f"w{index}"),
                  shutdown=math.inf)  # _worker bounds its own stop (SIGTERM, then SIGKILL)
        for index in range(len(workers.sockets))
    ]
    children.append(ChildSpec(id="signals", start=partial(Process.start_link, _forward_sighup, workers,
                                                          name="signals")))
    return Application(name=NAME, children=children,
                       flags=SupervisorFlags(Strategy.ONE_FOR_ONE, max_restarts=MAX_RESTARTS, max_seconds=PERIOD),
                       prep_stop=partial(_prep_stop, workers), config=workers,
                       prep_stop_timeout=workers.stop_timeout + 5.0)


def run_workers(config: Config, count: int, *, args: Sequence[str] = (),
                hold: Callable[[], AbstractContextManager[object]] = nullcontext) -> int:
    """`switchd run --workers N`: bind the SIP addresses, migrate once, supervise N workers; the exit code.

    Raises StartError (nothing created) when a check fails. Returns 0 once every worker stopped
    after SIGTERM/SIGINT, 1 when the workers restarted too often (all are stopped), 2 when the
    database cannot be migrated. `args`: more `switchd run` options for each worker; `hold`: as
    `switchd.app.run_daemon`'s (the pidfile), entered once the checks passed. Call it from the
    main thread; log handlers are the caller's.
    """
    check_start(config)
    check_workers(config, count)
    with hold():
        return _supervise(config, count, args)


def _supervise(config: Config, count: int, args: Sequence[str]) -> int:
    try:
        migrate(config)  # once, here: N workers upgrading one fresh database at once would race
    except (MigrationError, OSError) as exc:
        log.error("cannot prepare the billing database: %s", exc)
        return 2
    sockets = bind_sockets(config, count)
    lifeline, held = os.pipe()  # `held` stays here, never inherited: our exit is the workers' end-of-file
    try:
        log.info("supervising %d workers of node %s on %s", count, config.node, config.sip.listen,
                 extra={"workers": count, "node": config.node})
        workers = Workers(config, sockets, worker_program(config), args, lifeline=lifeline)
        return trio.run(run_async, build_supervisor(workers))
    finally:
        os.close(lifeline)
        os.close(held)
        close_sockets(sockets)


# --- the worker's side ----------------------------------------------------------------------------


def die_with_supervisor() -> None:
    """In a worker: SIGTERM to itself when its supervisor dies, however it dies — no worker outlives it.

    The supervisor hands every worker the read end of a pipe whose write end only it holds; the
    kernel closes that end when the supervisor exits, and a thread of the worker blocked reading
    the pipe then sees end-of-file and sends SIGTERM to its own process (the worker drains as on
    any SIGTERM). A thread, not a trio task: it must work before the node's loop runs and whatever
    the loop is doing. (PR_SET_PDEATHSIG would follow the supervisor's *thread* that started the
    worker, and trio starts processes from its worker threads, which exit when idle.)
    """
    fd = os.environ.get(PARENT_ENV, "")
    if fd.isdigit():
        threading.Thread(target=_await_supervisor_exit, args=(int(fd),), name="supervisor-watch", daemon=True).start()


def _await_supervisor_exit(fd: int) -> None:
    try:
        while os.read(fd, 1):
            pass
    except OSError as exc:  # not a pipe we can read: we cannot tell, so we do not guess
        log.error("cannot watch the supervisor (fd %d): %s", fd, exc)
        return
    log.warning("the supervisor has exited: stopping this worker", extra={"fd": fd})
    os.kill(os.getpid(), signal.SIGTERM)
