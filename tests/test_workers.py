"""switchd.workers: worker i's configuration, the shared sockets, and the supervisor of OS processes.

The supervisor tests run it with a stand-in worker (a small Python program that records what it
was handed and the signals it got, as files) instead of a whole switchd node: what is checked is
the supervision — restart, intensity, signals forwarded — not the node (tests/integration does
that with real workers and SIPp). Every wait is for a file or an exit, bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from switchd.app import StartError, check_start
from switchd.cli import main
from switchd.config import Address, Config, loads
from switchd.otp import run_async
from switchd.switch import parse_sockets
from switchd.workers import (
    MAX_RESTARTS,
    PARENT_ENV,
    Workers,
    bind_sockets,
    build_supervisor,
    check_workers,
    close_sockets,
    worker_config,
    worker_count,
)

# A stand-in worker: touches <dir>/w<i>.<pid>.started (its SOCKETS_ENV inside, after checking each
# descriptor is open), then one file per signal it gets; SIGTERM ends it with 0.
STAND_IN = r"""
import os, signal, sys
out, index = sys.argv[1], sys.argv[sys.argv.index("--worker") + 1]
def mark(what):
    with open(os.path.join(out, f"w{index}.{os.getpid()}.{what}"), "w") as f:
        f.write(os.environ.get("SWITCHD_SOCKETS", ""))
def on(signum, frame):
    mark(signal.Signals(signum).name)
    if signum == signal.SIGTERM:
        sys.exit(0)
signal.signal(signal.SIGTERM, on)
signal.signal(signal.SIGHUP, on)
for entry in filter(None, os.environ.get("SWITCHD_SOCKETS", "").split(";")):
    os.fstat(int(entry.split(" ")[3]))
mark("started")
while True:
    signal.pause()
"""


def config(*, udp: bool = False) -> Config:
    """A configuration on port 0 (any free port; the file format wants a real one, bind_sockets takes 0)."""
    cfg = loads("")
    anywhere = Address("127.0.0.1", 0)
    return replace(cfg, sip=replace(cfg.sip, listen=anywhere, listen_udp=(anywhere,) if udp else ()))


def marks(directory: Path, what: str, index: int | None = None) -> list[Path]:
    prefix = "w" if index is None else f"w{index}."
    return sorted(p for p in directory.iterdir() if p.name.startswith(prefix) and p.name.endswith(f".{what}"))


async def until(condition: Callable[[], bool], *, timeout: float = 20.0) -> None:
    """Wait for an OS process to have done something (a file appeared): checked every 20 ms, bounded."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.02)


def stand_in_workers(tmp_path: Path, count: int, *, program: list[str] | None = None) -> Workers:
    cfg = config()
    return Workers(cfg, bind_sockets(cfg, count), program or [sys.executable, "-c", STAND_IN, str(tmp_path)])


# --- configuration ----------------------------------------------------------------------------


def test_worker_count_takes_a_count_or_auto_for_one_per_core() -> None:
    assert worker_count(3) == 3
    assert worker_count("2") == 2
    assert worker_count("auto") == worker_count(0) == (os.cpu_count() or 1)
    with pytest.raises(ValueError, match="auto"):
        worker_count(-1)
    with pytest.raises(ValueError):
        worker_count("many")


def test_the_workers_key_is_read_and_checked() -> None:
    assert loads("").workers == 1
    assert loads("workers = 4\n").workers == 4
    with pytest.raises(Exception, match="workers"):
        loads("workers = -1\n")


def test_worker_i_is_a_node_of_its_own_name_with_its_api_on_the_base_port_plus_i(tmp_path: Path) -> None:
    base = loads(f'node = "edge"\n[api]\nlisten = "127.0.0.1:8100"\npidfile = "{tmp_path}/run/switchd.pid"\n')
    one = worker_config(base, 1)
    assert (one.node, one.api.listen, one.api.pidfile) == ("edge.w1", Address("127.0.0.1", 8101),
                                                           tmp_path / "run" / "switchd.w1.pid")
    assert (one.sip, one.database, one.billing) == (base.sip, base.database, base.billing)  # shared as written
    assert worker_config(replace(base, api=replace(base.api, listen=Address("127.0.0.1", 0))), 3).api.listen.port == 0


def test_a_udp_gateway_is_refused_with_more_than_one_worker() -> None:
    cfg = loads('[sip]\nlisten_udp = "127.0.0.1:5998"\n[[gateways]]\nname = "carrier"\naddress = "127.0.0.1:5070"\n'
                'transport = "udp"\n[[routes]]\nprefix = ""\ngateways = ["carrier"]\n', where="w.toml")
    check_workers(cfg, 1)
    with pytest.raises(StartError, match="'carrier' is reached over UDP"):
        check_workers(cfg, 2)


# --- the shared sockets -----------------------------------------------------------------------


def test_every_worker_gets_its_own_socket_of_one_shared_port_per_address() -> None:
    cfg = config(udp=True)
    sockets = bind_sockets(cfg, 3)
    try:
        tcp_ports = {s.getsockname() for worker in sockets for e, s in worker if e.kind == "tcp"}
        udp_ports = {s.getsockname() for worker in sockets for e, s in worker if e.kind == "udp"}
        assert len(tcp_ports) == 1 and len(udp_ports) == 1  # one port each, chosen once for port 0
        assert all([e.kind for e, _ in worker] == ["tcp", "udp"] for worker in sockets)
        assert len({s.fileno() for worker in sockets for _, s in worker}) == 6
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for worker in sockets for _, s in worker)
    finally:
        close_sockets(sockets)


def test_a_port_the_workers_hold_refuses_a_single_node_and_another_supervisor() -> None:
    sockets = bind_sockets(config(), 2)
    try:
        port = sockets[0][0][1].getsockname()[1]
        taken = loads(f'[sip]\nlisten = "127.0.0.1:{port}"\n')
        with pytest.raises(StartError, match=f"127.0.0.1:{port}: cannot listen there"):
            check_start(taken)  # what `switchd run` (single or supervisor) checks first
    finally:
        close_sockets(sockets)


# --- the supervisor -----------------------------------------------------------------------------


async def test_each_worker_starts_with_its_sockets_and_a_killed_one_is_restarted_alone(tmp_path: Path) -> None:
    workers = stand_in_workers(tmp_path, 2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_async, build_supervisor(workers))
        await until(lambda: len(marks(tmp_path, "started")) == 2)
        for index in (0, 1):
            [started] = marks(tmp_path, "started", index)
            handed = parse_sockets(started.read_text())
            assert [s.fd for s in handed] == [s.fileno() for _, s in workers.sockets[index]]
        first = workers.running[1].pid
        os.kill(first, signal.SIGKILL)
        await until(lambda: len(marks(tmp_path, "started", 1)) == 2)
        assert workers.running[1].pid != first
        assert len(marks(tmp_path, "started", 0)) == 1  # one_for_one: the other worker was left alone
        assert workers.started == 3
        os.kill(os.getpid(), signal.SIGTERM)
    assert not workers.running


async def test_sigterm_reaches_every_worker_at_once_and_the_supervisor_ends_with_0_when_all_stopped(
        tmp_path: Path) -> None:
    workers = stand_in_workers(tmp_path, 3)
    codes: list[int] = []

    async def supervise() -> None:
        codes.append(await run_async(build_supervisor(workers)))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervise)
        await until(lambda: len(marks(tmp_path, "started")) == 3)
        os.kill(os.getpid(), signal.SIGTERM)
    assert codes == [0]
    assert len(marks(tmp_path, "SIGTERM")) == 3  # each got one SIGTERM and stopped; none was restarted
    assert workers.started == 3 and not workers.running


async def test_sighup_reaches_every_worker(tmp_path: Path) -> None:
    workers = stand_in_workers(tmp_path, 2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_async, build_supervisor(workers))
        await until(lambda: len(marks(tmp_path, "started")) == 2)
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: len(marks(tmp_path, "SIGHUP")) == 2)
        assert workers.started == 2  # reloaded in place, not restarted
        os.kill(os.getpid(), signal.SIGTERM)


async def test_workers_that_keep_dying_stop_the_supervisor_with_exit_1(tmp_path: Path) -> None:
    workers = stand_in_workers(tmp_path, 2, program=[sys.executable, "-c", "import sys; sys.exit(3)"])
    with trio.fail_after(60):
        code = await run_async(build_supervisor(workers))
    assert code == 1
    assert workers.started == MAX_RESTARTS + 2  # two first starts, then restarts up to one too many
    assert not workers.running


def test_a_worker_stops_when_its_supervisor_is_gone_however_it_went(tmp_path: Path) -> None:
    lifeline, held = os.pipe()
    try:
        worker = subprocess.Popen(
            [sys.executable, "-c", ("import signal, switchd.workers as w; w.die_with_supervisor(); "
                                   "print('watching', flush=True); signal.pause()")],
            env={**os.environ, PARENT_ENV: str(lifeline)}, pass_fds=[lifeline], stdout=subprocess.PIPE, text=True)
        assert worker.stdout is not None and worker.stdout.readline() == "watching\n"
        assert worker.poll() is None  # alive while the write end is open
    finally:
        os.close(lifeline)
        os.close(held)  # what the kernel does when the supervisor exits, even by SIGKILL
    assert worker.wait(timeout=20) == -signal.SIGTERM


def test_switchd_run_refuses_a_bad_worker_count_and_a_udp_gateway_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "switchd.toml"
    path.write_text(f'data_dir = "{tmp_path}/data"\n[sip]\nlisten = "127.0.0.1:{free_port()}"\n'
                    f'listen_udp = "127.0.0.1:{free_port()}"\n[[gateways]]\nname = "carrier"\n'
                    'address = "127.0.0.1:5070"\ntransport = "udp"\n[[routes]]\nprefix = ""\ngateways = ["carrier"]\n',
                    encoding="utf-8")
    assert main(["run", "--config", str(path), "--workers", "many"]) == 2
    assert "workers must be a count >= 1 or 'auto'" in capsys.readouterr().err
    assert main(["run", "--config", str(path), "--workers", "2"]) == 2
    assert "gateway 'carrier' is reached over UDP" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # refused before anything was created


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_port_that_cannot_be_bound_is_named_and_nothing_stays_bound() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:  # no SO_REUSEPORT: nobody may join it
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        cfg = config()  # TCP binds first (two sockets), then the UDP address fails
        cfg = replace(cfg, sip=replace(cfg.sip, listen_udp=(Address("127.0.0.1", port),)))
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(StartError, match=f"sip.listen_udp = 127.0.0.1:{port}: cannot listen there"):
            bind_sockets(cfg, 2)
        assert len(os.listdir("/proc/self/fd")) == before
