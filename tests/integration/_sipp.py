"""SIPp as a child process of the tests: a callee (UAS) in the background, a caller (UAC) run to
completion, both on 127.0.0.1 over TCP (`-t t1`) unless told UDP (`transport="u1"`), stopped by
their own PID and bounded in time.

SIPp's verdict is read from its statistics file (`-trace_stat`): the cumulative SuccessfulCall and
FailedCall counters at the end of the run, plus IncomingCall for a callee.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


@dataclass(frozen=True, slots=True)
class SippStats:
    """The cumulative counters SIPp wrote last."""

    successful: int
    failed: int
    incoming: int
    outgoing: int


def read_stats(path: Path) -> SippStats:
    """Parse the last row of a SIPp `-trace_stat` CSV (semicolon separated)."""
    with path.open(newline="", encoding="latin-1") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    if len(rows) < 2:
        raise AssertionError(f"SIPp wrote no statistics to {path}")
    header, last = rows[0], rows[-1]
    value = dict(zip(header, last, strict=False))
    return SippStats(
        successful=int(value["SuccessfulCall(C)"]),
        failed=int(value["FailedCall(C)"]),
        incoming=int(value["IncomingCall(C)"]),
        outgoing=int(value["OutgoingCall(C)"]),
    )


def wait_for_tcp_port(port: int, *, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts TCP connections on 127.0.0.1:`port` (a start-up barrier)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process {proc.args!r} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s") from None
            time.sleep(0.05)


def wait_for_udp_port(port: int, *, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until a UDP socket is bound to 127.0.0.1:`port` (read from /proc/net/udp: nothing to connect to)."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process {proc.args!r} exited with {proc.returncode} before listening")
        bound = Path("/proc/net/udp").read_text(encoding="ascii").split()
        if wanted in bound:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing bound to UDP 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.05)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def end_process(proc: subprocess.Popen[bytes], signum: int, *, timeout: float) -> int:
    """Send `signum` to our child `proc` if it still runs, wait `timeout` s, then SIGKILL; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signum)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.returncode


def _scenario_args(scenario: str) -> list[str]:
    """`uac`/`uas` are SIPp's built-in scenarios; anything else is one of our XML files."""
    if scenario in {"uac", "uas"}:
        return ["-sn", scenario]
    return ["-sf", str(SCENARIOS / scenario)]


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _common(workdir: Path, name: str, transport: str = "t1") -> list[str]:
    return [
        "-i", "127.0.0.1", "-t", transport, "-nostdin", "-max_socket", "1000",
        "-trace_err", "-error_file", str(workdir / f"{name}_errors.log"),
        "-trace_stat", "-stf", str(workdir / f"{name}_stat.csv"), "-fd", "1",
    ]


class SippCallee:
    """A SIPp UAS listening on 127.0.0.1:`port` until stopped (by its PID)."""

    def __init__(self, sipp: Path, workdir: Path, *, port: int, scenario: str = "uas",
                 hold_ms: int = 0, name: str = "uas", timeout_s: int = 120, extra: Sequence[str] = (),
                 transport: str = "t1") -> None:
        self.port = port
        self.name = name
        self.workdir = workdir
        args = [str(sipp), *_scenario_args(scenario), "-p", str(port), *_common(workdir, name, transport),
                "-d", str(hold_ms), "-timeout", f"{timeout_s}s", *extra]
        self.proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL,
                                     stderr=(workdir / f"{name}.stderr").open("wb"))
        if transport == "u1":
            wait_for_udp_port(port, proc=self.proc)
        else:
            wait_for_tcp_port(port, proc=self.proc)

    def stop(self) -> SippStats:
        """Stop this SIPp (SIGUSR1 makes it dump its final statistics), then read them."""
        end_process(self.proc, signal.SIGUSR1, timeout=5)
        return read_stats(self.workdir / f"{self.name}_stat.csv")

    def errors(self) -> str:
        path = self.workdir / f"{self.name}_errors.log"
        return path.read_text(encoding="latin-1") if path.exists() else ""


@dataclass(frozen=True, slots=True)
class CallerRun:
    """How a SIPp UAC run ended."""

    returncode: int
    stats: SippStats
    errors: str


def run_caller(sipp: Path, workdir: Path, target: str, *, scenario: str = "uac", calls: int = 1,
               rate: float = 10, hold_ms: int = 0, service: str = "15551234567",
               extra: Sequence[str] = (), name: str = "uac", timeout_s: int = 120,
               transport: str = "t1") -> CallerRun:
    """Run a SIPp UAC against `target` until its `calls` calls are done (bounded by `timeout_s`)."""
    port = free_udp_port() if transport == "u1" else free_tcp_port()
    args = [str(sipp), target, *_scenario_args(scenario), *_common(workdir, name, transport), "-p", str(port),
            "-s", service, "-m", str(calls), "-r", str(rate), "-d", str(hold_ms),
            "-recv_timeout", "10000", "-timeout", f"{timeout_s}s", "-timeout_error", *extra]
    env = {**os.environ}
    proc = subprocess.run(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=timeout_s + 30, env=env, check=False)
    errors_path = workdir / f"{name}_errors.log"
    errors = errors_path.read_text(encoding="latin-1") if errors_path.exists() else ""
    return CallerRun(proc.returncode, read_stats(workdir / f"{name}_stat.csv"), errors)


class SippCaller:
    """A SIPp UAC placing calls against `target` in the background, each message traced with its time.

    `-trace_msg` writes every message it sends and receives, with a microsecond wall-clock stamp,
    to `<name>_messages.log` (read with `tests.integration._traces.read_trace`): per Call-ID, what
    the caller saw. `wait` lets it finish its `calls`; `stop` ends it early (SIGUSR1: SIPp stops
    placing calls and quits); both bounded in time, SIGKILL by PID as the last resort.
    """

    def __init__(self, sipp: Path, workdir: Path, target: str, *, calls: int, rate: float, hold_ms: int,
                 service: str = "15551234567", name: str = "uac", timeout_s: int = 120,
                 extra: Sequence[str] = (), transport: str = "t1") -> None:
        self.workdir = workdir
        self.name = name
        self.trace_path = workdir / f"{name}_messages.log"
        args = [str(sipp), target, "-sn", "uac", *_common(workdir, name, transport), "-p", str(free_tcp_port()),
                "-s", service, "-m", str(calls), "-r", str(rate), "-d", str(hold_ms),
                "-recv_timeout", "10000", "-timeout", f"{timeout_s}s", "-timeout_error",
                "-trace_msg", "-message_file", str(self.trace_path), *extra]
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=(workdir / f"{name}.stderr").open("wb"))

    def wait(self, timeout: float | None = None) -> int:
        """Its exit status once it ended by itself (0: every call succeeded; 255: it aborted)."""
        try:
            return self.proc.wait(timeout=self.timeout_s + 30 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError(f"SIPp caller {self.name} still ran after its time; killed") from None

    def stop(self) -> int:
        """Stop placing calls and quit (SIGUSR1), or SIGKILL after 15 s; its exit status."""
        return end_process(self.proc, signal.SIGUSR1, timeout=15)

    def stats(self) -> SippStats:
        return read_stats(self.workdir / f"{self.name}_stat.csv")

    def errors(self) -> str:
        path = self.workdir / f"{self.name}_errors.log"
        return path.read_text(encoding="latin-1")[-3000:] if path.exists() else ""
