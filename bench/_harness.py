"""What the issue-16 benches share: the servers under test, SIPp runs through sipp_cps.sh, CPU and CDRs.

The server under test listens on 127.0.0.1:5060 and routes every call to the SIPp callee on
127.0.0.1:5070 — the two fixed ports of the bench kit (bench/sipp_cps.sh, bench/kam.sh; `Ports`
lets a switchd-only run use others); only one bench may use them at a time, so `ports_free` is
checked before anything starts.

- `SwitchdNode`: `python -m switchd run` from a temp dir with its own configuration (SQLite, the
  sample rate deck, log level WARNING, limits as the bench asks), on TCP or UDP.
- `Kamailio`: bench/kam.sh with bench/kamailio.cfg, on TCP or UDP.
- `run_sipp`: one bench/sipp_cps.sh run; its RESULT line as a dict.
- `cpu_seconds`, `rss_kib`: a server's CPU (process and its descendants) and resident memory, from /proc.
- `CdrCounts`: the CDR rows of a switchd node's SQLite file, by status.

Every process is stopped by its own PID, also when the caller is interrupted (`stop` methods are
idempotent; callers use try/finally).
"""

from __future__ import annotations

import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SIPP_CPS = BENCH / "sipp_cps.sh"
KAM_SH = BENCH / "kam.sh"
RATE_DECK = REPO / "config" / "rates.csv"
# The number SIPp dials (-s): a North American number the sample deck rates (+1), so every call is rated.
DIALLED = "12125551234"
HZ = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True, slots=True)
class Ports:
    """Where the server under test listens and where the SIPp callee listens, on 127.0.0.1.

    The bench kit's are 5060 and 5070 (Kamailio's configuration knows only those); switchd-only runs
    (the CI smoke test) may pick free ones.
    """

    server: int = 5060
    callee: int = 5070

    @classmethod
    def parse(cls, text: str) -> Ports:
        """"SERVER,CALLEE" (e.g. "15060,15070")."""
        server, callee = (int(x) for x in text.split(","))
        if not (0 < server < 65536 and 0 < callee < 65536) or server == callee:
            raise ValueError(text)
        return cls(server, callee)


KIT_PORTS = Ports()


class HarnessError(Exception):
    """The bench cannot go on (a port is taken, a server did not start, a tool is missing)."""


# --- /proc ------------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it (Kamailio's workers, switchd's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by `pids` (all their threads)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / HZ


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them."""
    return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])


def machine() -> str:
    """CPU model and count, for the record."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} vCPU {model}, Python {sys.version.split()[0]}"


def ports_free(ports: Ports, transport: str, *, wait: float = 120.0) -> None:
    """Return once the server's and the callee's ports are free; HarnessError if still taken after `wait` s.

    Another bench's SIPp caller binds 5060 when it is free (SIPp's default local port), for the
    length of its run: such a port is waited for, not fought over.
    """
    flag = "-Hltnp" if transport.startswith("t") else "-Hlunp"
    deadline = time.monotonic() + wait
    while True:
        taken = [line for port in (ports.server, ports.callee) for line in subprocess.run(
            ["ss", flag, f"sport = :{port}"], capture_output=True, text=True, check=False).stdout.splitlines()]
        if not taken:
            return
        if time.monotonic() > deadline:
            raise HarnessError(f"ports {ports.server} and {ports.callee} are needed but in use for {wait:g} s: "
                               f"{' | '.join(' '.join(line.split()[3:]) for line in taken)}")
        time.sleep(1.0)


def run_in_tempdir(name: str, run: Callable[[Path], bool]) -> int:
    """A bench's exit status: `run` in a temp dir (0 met, 1 not); a HarnessError is one line and 2,
    an interruption 130 (everything started is stopped by then)."""
    try:
        with tempfile.TemporaryDirectory(prefix=f"switchd-{name}-") as tmp:
            return 0 if run(Path(tmp)) else 1
    except HarnessError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; everything started was stopped", file=sys.stderr)
        return 130


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_signals() -> None:
    """SIGTERM (and SIGINT, which a shell's background job ignores) end a bench as Ctrl-C does.

    Its try/finally blocks then stop what it started, by PID; Python's default SIGTERM would not.
    """
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it); the new limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- the servers under test -------------------------------------------------------------------------


def _end(proc: subprocess.Popen[bytes], first: int, grace: float) -> int:
    """Send `first` to our child `proc`, wait `grace` s, then SIGKILL; its exit status."""
    if proc.poll() is None:
        proc.send_signal(first)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def _wait_listening(port: int, transport: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    flag = "-Hltn" if transport.startswith("t") else "-Hlun"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", flag, f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
        if out.strip():
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


@dataclass
class SwitchdNode:
    """One `python -m switchd run` in `workdir`, SIP on `ports.server`, every call to `ports.callee`.

    `cps`/`burst`/`max_calls`/`max_loop_lag` are its [limits]; `transport` "t1" (TCP) or "u1" (UDP: it also listens
    on UDP 5060 and its gateway is UDP); `workers` is passed as `switchd run --workers N` when set;
    `repo` is the source tree it runs (another checkout, to compare two versions in one run).
    """

    workdir: Path
    repo: Path = REPO
    gc_stats: Path | None = None  # run under bench/_gc_probe.py, which writes its collector figures here
    ports: Ports = KIT_PORTS
    transport: str = "t1"
    cps: float = 100_000.0
    burst: int = 100_000
    max_calls: int = 100_000
    max_loop_lag: float = 0.0  # [limits] max_loop_lag: 0 leaves it off, as shipped
    workers: int | None = None
    api_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "switchd.log"

    @property
    def database(self) -> Path:
        return self.workdir / "data" / "switchd.sqlite3"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise HarnessError("switchd was not started")
        return self.proc.pid

    def write_config(self) -> Path:
        self.api_port = _free_port_run(self.workers or 1)  # worker i's API is on the [api] port + i
        udp = self.transport.startswith("u")
        lines = [
            'node = "bench"', 'data_dir = "data"', "",
            "[sip]", f'listen = "127.0.0.1:{self.ports.server}"',
            *([f'listen_udp = ["127.0.0.1:{self.ports.server}"]'] if udp else []), "",
            "[api]", f'listen = "127.0.0.1:{self.api_port}"', "",
            "[billing]", f'rate_deck = "{RATE_DECK}"', "",
            "[limits]", f"max_calls = {self.max_calls}", f"cps = {self.cps:g}", f"burst = {self.burst}",
            f"max_loop_lag = {self.max_loop_lag:g}", "",
            "[[gateways]]", 'name = "callee"', f'address = "127.0.0.1:{self.ports.callee}"',
            *(['transport = "udp"'] if udp else []), "",
            "[[routes]]", 'prefix = ""', 'gateways = ["callee"]', "",
        ]
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "switchd.toml"
        path.write_text("\n".join(lines), encoding="utf-8")
        return path

    def start(self) -> SwitchdNode:
        config = self.write_config()
        start = ["-m", "switchd"] if self.gc_stats is None else [str(BENCH / "_gc_probe.py"), str(self.gc_stats)]
        args = [sys.executable, *start, "run", "--config", str(config), "--log-level", "WARNING"]
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        env = {**os.environ, "PYTHONPATH": str(self.repo)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=env, start_new_session=True)
        if not _wait_listening(self.ports.server, self.transport, self.proc, 30.0):
            self.stop()
            tail = self.log(12)
            if self.workers is not None and "--workers" in tail:
                raise HarnessError(f"switchd refused `run --workers {self.workers}` (not in this build?):\n{tail}")
            raise HarnessError(f"switchd did not start listening on 127.0.0.1:{self.ports.server}:\n{tail}")
        # With --workers the supervisor binds the SIP address before any worker runs: a connection
        # the kernel hands to a worker still starting waits for it. Wait until every worker's API answers.
        for i in range(self.workers or 1):
            if not _wait_health(self.api_port + i, self.proc, 30.0):
                self.stop()
                raise HarnessError(f"switchd worker {i} did not answer on its API port {self.api_port + i}:\n"
                                   f"{self.log(12)}")
        return self

    def stop(self) -> None:
        """SIGTERM (the node drains; no calls are left by then), then SIGKILL after 40 s. Idempotent."""
        if self.proc is not None:
            _end(self.proc, signal.SIGTERM, 40.0)

    def pids(self) -> list[int]:
        return descendants(self.pid)

    def log(self, tail: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-tail:])


def _free_port_run(count: int) -> int:
    """A port p with p .. p + count - 1 all free on 127.0.0.1 (tried a few times)."""
    import socket
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            base = int(first.getsockname()[1])
        try:
            held = []
            for port in range(base, base + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
        return base
    raise HarnessError(f"no {count} consecutive free ports on 127.0.0.1")


def _wait_health(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether GET /health on 127.0.0.1:`port` answers 200 before `timeout` (False once `proc` exited)."""
    import http.client
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    return False


@dataclass
class Kamailio:
    """The bench Kamailio (bench/kam.sh start/stop, bench/kamailio.cfg): TCP, or UDP with `transport` u1.

    It listens on 127.0.0.1:5060 and calls 127.0.0.1:5070 (KIT_PORTS), as its configuration says.
    """

    state: Path
    transport: str = "t1"
    udp_workers: int | None = None  # kamailio.cfg's UDP_WORKERS (4) when None; 1 keeps a call's replies in order
    main_pid: int | None = None

    def start(self) -> Kamailio:
        env = {**os.environ, "KAM_STATE": str(self.state)}
        args = [str(KAM_SH), "start", "-x", "tlsf"]
        if self.transport.startswith("u"):  # also listen on UDP, and reach the callee over UDP
            args += ["-A", f"LISTEN_UDP=udp:127.0.0.1:{KIT_PORTS.server}", "-A",
                     f'CALLEE="sip:127.0.0.1:{KIT_PORTS.callee}"']
            if self.udp_workers is not None:
                args += ["-A", f"UDP_WORKERS={self.udp_workers}"]
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
        if done.returncode != 0:
            raise HarnessError(f"kamailio did not start: {done.stderr.strip()}")
        self.main_pid = int(done.stdout.split()[-1])
        if self.transport.startswith("u") and not _wait_listening(KIT_PORTS.server, "u1", None, 10.0):
            raise HarnessError("kamailio does not listen on UDP 5060")
        return self

    def stop(self) -> None:
        """kam.sh stop: the PID its start recorded, nothing else. Idempotent."""
        if self.main_pid is not None:
            env = {**os.environ, "KAM_STATE": str(self.state)}
            subprocess.run([str(KAM_SH), "stop"], env=env, timeout=30, check=False, capture_output=True)
            self.main_pid = None

    @property
    def pid(self) -> int:
        if self.main_pid is None:
            raise HarnessError("kamailio was not started")
        return self.main_pid

    def pids(self) -> list[int]:
        return descendants(self.pid)


# --- SIPp -------------------------------------------------------------------------------------------


def start_sipp(*, ports: Ports = KIT_PORTS, rate: float, calls: int, hold_ms: int, transport: str, capture: bool = False,
               outdir: Path | None = None, limit: int | None = None, scenario: Path | None = None,
               pids: list[int] | None = None) -> subprocess.Popen[str]:
    """Start one bench/sipp_cps.sh run (SIPp uac -> `ports.server` -> SIPp uas on `ports.callee`).

    `capture`: -C (tcpdump; pcap_* fields); `outdir`: keep the artefacts there; `limit`: sipp -l;
    `scenario`: a UAC scenario file instead of SIPp's built-in uac; `pids`: server processes whose
    CPU sipp_cps.sh reports as cpu_srv and cpu_srv_s (their direct children are counted too).
    """
    args = [str(SIPP_CPS), "-s", f"127.0.0.1:{ports.server}", "-c", str(ports.callee), "-r", f"{rate:g}",
            "-m", str(calls), "-d", str(hold_ms), "-t", transport, "-x", f"-s {DIALLED}"]
    if capture:
        args.append("-C")
    if outdir is not None:
        args += ["-o", str(outdir)]
    if limit is not None:
        args += ["-L", str(limit)]
    if scenario is not None:
        args += ["-S", str(scenario)]
    for pid in pids or ():
        args += ["-p", str(pid)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_sipp(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to sipp_cps.sh, whose trap stops its SIPp and tcpdump by PID; wait for it. Idempotent."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def sipp_result(proc: subprocess.Popen[str]) -> dict[str, str]:
    """Wait for a `start_sipp` run; its RESULT line's fields. Stops the run on any exception (Ctrl-C)."""
    try:
        out, err = proc.communicate()
    except BaseException:
        stop_sipp(proc)
        raise
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise HarnessError(f"sipp_cps.sh gave no result (exit {proc.returncode}): "
                           f"{shlex.join(str(a) for a in proc.args)}\n{err.strip()[-2000:]}")  # type: ignore[union-attr]
    return dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)


def run_sipp(**kwargs: Any) -> dict[str, str]:
    """`start_sipp(**kwargs)` and wait for its result."""
    return sipp_result(start_sipp(**kwargs))


def number(fields: dict[str, str], key: str) -> float:
    """A numeric RESULT field; NaN when SIPp had nothing to say (NA)."""
    try:
        return float(fields.get(key, "nan"))
    except ValueError:
        return float("nan")


# --- CDRs -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CdrCounts:
    """CDR rows of a node's SQLite file: all of them, and those still open."""

    rows: int
    open: int

    @classmethod
    def read(cls, database: Path) -> CdrCounts:
        if not database.exists():
            return cls(0, 0)
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
            rows, still_open = db.execute(
                "SELECT count(*), coalesce(sum(status = 'open'), 0) FROM cdrs").fetchone()
        return cls(int(rows), int(still_open))


def wait_cdrs(database: Path, before: CdrCounts, expected: int, *, timeout: float = 20.0) -> CdrCounts:
    """The counts once `expected` new rows are there and none is open, or as they are after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        now = CdrCounts.read(database)
        if (now.rows - before.rows >= expected and now.open == 0) or time.monotonic() > deadline:
            return now
        time.sleep(0.2)
