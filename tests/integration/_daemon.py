"""switchd as a child process of the tests: `python -m switchd run --config FILE` on 127.0.0.1.

`write_config` writes a complete configuration into a test's temporary directory (free ports, the
SQLite database and the CDR spool under it, gateways on the callee ports, a catch-all route, the
sample rate deck); `Switchd.start` runs the daemon with it, its stderr going to a file, and returns
once the SIP port accepts connections; `Switchd.stop` ends it by PID (SIGTERM, a bounded wait,
then SIGKILL) and returns the exit status. CDRs are read back from the SQLite file with
switchd.billing's own queries, so the tests check what `switchd cdr` would show.

Everything is bounded: every wait has a deadline, and a daemon still running at teardown is
killed by its PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from switchd.billing import Cdr, CdrStatus, list_cdrs, open_engine
from switchd.config import Config, load

from ._sipp import free_tcp_port, wait_for_tcp_port

REPO = Path(__file__).resolve().parents[2]

# `python -m switchd` with at most {nofile} open files, as `ulimit -n` sets them; a wrapper rather
# than Popen's preexec_fn, which is unsafe while the tests run other threads.
_LIMITED = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile})); "
            "sys.argv[0] = 'switchd'; runpy.run_module('switchd', run_name='__main__', alter_sys=True)")
RATE_DECK = REPO / "config" / "rates.csv"  # the sample deck: +1 is 0.01/min in 6 s increments

# Timers short enough for a test to see them fire, long enough for a loaded 2-core CI box.
FAST_TIMERS: Mapping[str, float] = {"t1": 0.5, "t2": 4.0, "t4": 5.0, "no_answer": 60.0,
                                    "max_call_duration": 3600.0, "drain_timeout": 5.0}


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    """A gateway of the test configuration: `name` at 127.0.0.1:`port`, over `transport` ("tcp", "udp"); with
    `registration` (its table: username, password, expires, domain) switchd registers with it."""

    name: str
    port: int
    transport: str = "tcp"
    registration: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A route: numbers starting with `prefix` go to `gateways` in this order (priority 1, 2, …)."""

    prefix: str
    gateways: tuple[str, ...]
    id: str | None = None


def _section_lines(sections: Mapping[str, Mapping[str, object]]) -> list[str]:
    lines: list[str] = []
    for name, keys in sections.items():
        lines += [f"[{name}]", *(f"{key} = {_toml_value(value)}" for key, value in keys.items()), ""]
    return lines


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key} = {_toml_value(v)}" for key, v in value.items()) + " }"
    raise TypeError(f"no TOML spelling for {value!r}")


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """What a test's switchd is configured with; `path` is the TOML file written for it."""

    path: Path
    sip_port: int
    config: Config  # the file loaded back with switchd.config.load: the TOML is valid

    @property
    def database_url(self) -> str:
        return self.config.database.url


def write_config(
    directory: Path,
    gateways: Sequence[GatewaySpec],
    *,
    routes: Sequence[RouteSpec] | None = None,
    timers: Mapping[str, float] | None = None,
    max_calls: int = 1000,
    node: str = "itest",
    policy: str = "priority_weight",
    sip_port: int | None = None,
    routes_file: bool = False,
    sip: Mapping[str, object] | None = None,
    database_url: str | None = None,
    api: Mapping[str, object] | None = None,
    sections: Mapping[str, Mapping[str, object]] | None = None,
) -> DaemonConfig:
    """A switchd configuration file in `directory`, every port on 127.0.0.1 and every file under it.

    Without `routes`, one catch-all route (prefix "") sends every number to `gateways` in order —
    SIPp dials the word "service" unless told otherwise. `timers` override `FAST_TIMERS`. With
    `routes_file`, gateways and routes go to `routes.toml` next to it (what SIGHUP re-reads; see
    `write_routes`). `sip` adds keys to `[sip]` (its limits), `api` to `[api]` (e.g. chaos).
    `database_url` replaces the SQLite file under `directory` (e.g. PostgreSQL). `sections` writes
    more tables, e.g. ``{"auth": {"realm": "pbx.test"}}``. Without an ``acl`` among them and without
    ``domain`` in `sip`, loopback is trusted (``acl.trusted = ["127.0.0.0/8"]``, as the shipped
    configuration does), so SIPp calls without accounts as it did before switchd had any; a
    configuration that serves a domain (its users are phones, which authenticate) trusts nobody
    unless it says so.
    """
    directory.mkdir(parents=True, exist_ok=True)
    sip_port = free_tcp_port() if sip_port is None else sip_port
    chosen = {**FAST_TIMERS, **(timers or {})}
    if routes is None:
        routes = [RouteSpec("", tuple(g.name for g in gateways))]
    lines = [
        f"node = {_toml_value(node)}",
        f"data_dir = {_toml_value(directory / 'data')}",
        "",
        "[sip]",
        f'listen = "127.0.0.1:{sip_port}"',
        *(f"{key} = {_toml_value(value)}" for key, value in (sip or {}).items()),
        "",
        "[api]",
        f'listen = "127.0.0.1:{free_tcp_port()}"',
        *(f"{key} = {_toml_value(value)}" for key, value in (api or {}).items()),
        "",
        "[billing]",
        f"rate_deck = {_toml_value(RATE_DECK)}",
        "",
        *([] if database_url is None else ["[database]", f"url = {_toml_value(database_url)}", ""]),
        "[timers]",
        *(f"{key} = {_toml_value(float(value))}" for key, value in chosen.items()),
        "",
        "[limits]",
        f"max_calls = {max_calls}",
        "",
        *_section_lines({**({} if "domain" in (sip or {}) else {"acl": {"trusted": ["127.0.0.0/8"]}}),
                         **(sections or {})}),
        "[routing]",
        f"policy = {_toml_value(policy)}",
    ]
    if routes_file:
        lines.append('routes_file = "routes.toml"')
        write_routes(directory / "routes.toml", gateways, routes)
    else:
        lines += _routing_lines(gateways, routes)
    path = directory / "switchd.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return DaemonConfig(path=path, sip_port=sip_port, config=load(path))


def _routing_lines(gateways: Sequence[GatewaySpec], routes: Sequence[RouteSpec]) -> list[str]:
    lines: list[str] = []
    for gateway in gateways:
        lines += ["", "[[gateways]]", f"name = {_toml_value(gateway.name)}",
                  f'address = "127.0.0.1:{gateway.port}"']
        if gateway.transport != "tcp":
            lines.append(f"transport = {_toml_value(gateway.transport)}")
        if gateway.registration is not None:
            lines.append(f"registration = {_toml_value(gateway.registration)}")
    for route in routes:
        lines += ["", "[[routes]]"]
        if route.id is not None:
            lines.append(f"id = {_toml_value(route.id)}")
        lines += [f"prefix = {_toml_value(route.prefix)}", f"gateways = {_toml_value(list(route.gateways))}"]
    return lines


def write_routes(path: Path, gateways: Sequence[GatewaySpec], routes: Sequence[RouteSpec],
                 *, extra: str = "") -> None:
    """A routes file (`[[gateways]]`, `[[routes]]`) at `path`; `extra` is appended as written."""
    path.write_text("\n".join(_routing_lines(gateways, routes)).lstrip() + "\n" + extra, encoding="utf-8")


@dataclass
class Switchd:
    """One `python -m switchd run` child process; see the module docstring."""

    cfg: DaemonConfig
    stderr_path: Path
    nofile: int | None = None  # RLIMIT_NOFILE of the daemon (ulimit -n); None: the test's own
    proc: subprocess.Popen[bytes] | None = None
    returncode: int | None = None
    args: tuple[str, ...] = ()  # more `switchd run` options, e.g. ("--log-format", "json")
    _stderr: object = field(default=None, repr=False)

    @property
    def sip_port(self) -> int:
        return self.cfg.sip_port

    @property
    def target(self) -> str:
        """The SIP address to call: 127.0.0.1:<sip port>."""
        return f"127.0.0.1:{self.cfg.sip_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "switchd was not started"
        return self.proc.pid

    def start(self, *, timeout: float = 20.0) -> Switchd:
        """Run the daemon; return once its SIP port accepts TCP connections (or fail with its log)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        stderr = self.stderr_path.open("ab")
        self._stderr = stderr
        command = ["-m", "switchd"] if self.nofile is None else ["-c", _LIMITED.format(nofile=self.nofile)]
        self.proc = subprocess.Popen(
            [sys.executable, *command, "run", "--config", str(self.cfg.path), *self.args],
            cwd=self.cfg.path.parent, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, env=env,
        )
        try:
            wait_for_tcp_port(self.cfg.sip_port, timeout=timeout, proc=self.proc)
        except AssertionError as exc:
            self.kill()
            raise AssertionError(f"{exc}\n--- switchd log ---\n{self.log()}") from None
        return self

    def signal(self, signum: int) -> None:
        """Send `signum` to the daemon (by its PID)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """The exit status, waiting at most `timeout` seconds (AssertionError with the log if it runs on)."""
        assert self.proc is not None, "switchd was not started"
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"switchd (pid {self.proc.pid}) still runs after {timeout}s\n"
                                 f"--- switchd log ---\n{self.log()}") from None
        return self.returncode

    def stop(self, *, timeout: float = 15.0) -> int:
        """SIGTERM, wait up to `timeout` s for the drain to end, then SIGKILL; the exit status."""
        if self.proc is None:
            raise AssertionError("switchd was not started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"switchd (pid {self.proc.pid}) ignored SIGTERM for {timeout}s; killed"
                                     f"\n--- switchd log ---\n{self.log()}") from None
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self) -> None:
        """SIGKILL by PID and reap, if it still runs (teardown's last resort)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, *, tail: int = 60) -> str:
        """The last `tail` lines the daemon wrote to stderr."""
        if not self.stderr_path.exists():
            return "(no log)"
        lines = self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-tail:])

    def wait_for_log(self, text: str, *, count: int = 1, timeout: float = 10.0) -> None:
        """Return once `text` occurs `count` times in the daemon's log; checks every 0.05 s up to `timeout`.

        For what only the log tells from outside the process (a SIGHUP reload was done or refused).
        """
        deadline = time.monotonic() + timeout
        while True:
            seen = self.stderr_path.read_text(encoding="utf-8", errors="replace").count(text)
            if seen >= count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} logged {seen} times, not {count}, after {timeout}s\n"
                                     f"--- switchd log ---\n{self.log()}")
            time.sleep(0.05)

    def cdrs(self) -> list[Cdr]:
        """Every CDR in the daemon's database, oldest setup first (read with switchd.billing)."""
        return read_cdrs(self.cfg.database_url)

    def wait_for_cdrs(self, done: Callable[[list[Cdr]], bool], *, timeout: float = 10.0) -> list[Cdr]:
        """The CDRs once `done(cdrs)` holds; checks the database every 0.1 s up to `timeout`.

        The daemon is another process: its commits are seen only by reading the file again.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self.cdrs()
            if done(found):
                return found
            if time.monotonic() > deadline:
                summary = [(c.call_id, c.status.value, c.disposition) for c in found]
                raise AssertionError(f"CDRs not as expected after {timeout}s: {summary}\n"
                                     f"--- switchd log ---\n{self.log()}")
            time.sleep(0.1)

    def wait_closed(self, count: int, *, timeout: float = 10.0) -> list[Cdr]:
        """The CDRs once at least `count` exist and all of them are closed."""
        return self.wait_for_cdrs(
            lambda cdrs: len(cdrs) >= count and all(c.status is not CdrStatus.OPEN for c in cdrs),
            timeout=timeout)


def read_cdrs(url: str) -> list[Cdr]:
    """Every CDR in the database at `url`, oldest setup first, detached from their session."""
    engine = open_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            found: list[Cdr] = []
            page = list_cdrs(session, limit=10_000)
            found.extend(page.cdrs)
            while page.next is not None:
                page = list_cdrs(session, limit=10_000, after=page.next)
                found.extend(page.cdrs)
            session.expunge_all()
            return found
    finally:
        engine.dispose()
