"""The node under fuzz, and what its log says.

`SpawnedNode` runs `python -m switchd run` (JSON log lines) on free 127.0.0.1 ports with a
configuration in a temp dir (written by the integration tests' `write_config`), its gateway a
`switchd sim` that answers, rejects busy or answers-then-hangs-up by dialled prefix; both are
stopped by their PID. `LogWatch` reads that log as it grows and keeps every record that breaks the
fuzzer's promise:

* a `crash` report of any process that is not a call session (supervisor ``calls``, child
  ``call:<Call-ID>``) — a connection, the billing store, the router, a listener …;
* `gave_up` (a supervisor exceeded its restart intensity: the node is going down), `start_failed`,
  `handler_removed`, and the application stopping or crashing;
* a traceback anywhere but in a call session's crash report or a record of that call (one that
  carries its ``call_id``): a raw one on stderr, or one logged with ``exc_info`` by any other process.

Call session crashes and a call's own tracebacks are allowed (one fault stays in its call), but
counted and reported too.
Each finding has a signature (what crashed, the exception type, its innermost switchd frame) so
a 100,000-message run reports a few distinct faults with counts, not thousands of lines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration._daemon import GatewaySpec, Switchd, read_cdrs, write_config
from tests.integration._sipp import end_process, free_tcp_port, free_udp_port, wait_for_tcp_port

# A token a mutation wrote into (fz1\udcff\x80x59): escapes between its two halves are skipped.
_LOOSE_TOKEN = re.compile(r"fz(\d+)(?:\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\[rnt0]|[^\w\s]){0,24}?x(\d+)")
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')

# The gateway's behaviour by dialled prefix (see _fuzz_corpus.NUMBERS): most calls answer at once.
BEHAVIOURS = """\
default = "answer:ring=0"

[prefixes]
"1555000048" = "busy"
"+1555000048" = "busy"
"4420" = "hangup:ring=0,hold=0.3"
"+4420" = "hangup:ring=0,hold=0.3"
"""


@dataclass(frozen=True, slots=True)
class Finding:
    """One log record (or raw traceback) that breaks the fuzzer's promise, or a call session crash."""

    kind: str  # crash, gave_up, start_failed, handler_removed, stopped, traceback; allowed: session_crash, call_fault
    signature: str
    ts: float | None  # the record's time (epoch seconds); None for raw stderr
    child: str | None
    tokens: tuple[str, ...]  # the fuzz tokens (fz<seed>x<index>) the record mentions, the likeliest first
    text: str  # the record, shortened


def _innermost(exc_text: str) -> str:
    """`sip/_headers.py:83 _checked via switch/_dispatch.py:132 _answer`: where a formatted traceback ends.

    The last switchd frame, and the last frame of the layer that called into it (switch, billing …
    calling sip or otp), since the same check can be reached from many places.
    """
    frames = [(path.rpartition("/switchd/")[2], line, fn) for path, line, fn in _FRAME.findall(exc_text)
              if "/switchd/" in path]
    if not frames:
        return "?"
    where = "{}:{} {}".format(*frames[-1])
    layer = frames[-1][0].partition("/")[0]
    callers = [f for f in frames if f[0].partition("/")[0] not in {layer, "otp"}]
    return where + (" via {}:{} {}".format(*callers[-1]) if callers else "")


_RAISED = re.compile(r"(?m)^[\s|]*([A-Za-z_][\w.]*)(?::|$)")


def _exception_type(reason: str, exc_text: str) -> str:
    """The innermost exception's class name: an exception group's leaf, not the group."""
    names: list[str] = [n for n in _RAISED.findall(exc_text)
                        if not n.endswith("ExceptionGroup") and n.rpartition(".")[2][:1].isupper()]
    if not names:
        match = re.match(r"([\w.]+)\(", reason)
        return match.group(1).rpartition(".")[2] if match else reason[:60]
    return names[-1].rpartition(".")[2]


def _child_kind(child: str | None) -> str:
    if child is None:
        return "-"
    if child.startswith("call:"):
        return "call session"
    if child.startswith("sip "):
        return "sip connection"
    return child


def _plain(message: str) -> str:
    """`message` without what differs between occurrences of one fault: pids, quoted values, numbers."""
    message = re.sub(r"<\d+\.\d+\.\d+>", "<pid>", message)
    message = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "'…'", message)
    return re.sub(r"\d+", "N", message)


def _ts(entry: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(str(entry["ts"])).timestamp()
    except (KeyError, ValueError):
        return None


def classify(entry: dict[str, Any]) -> Finding | None:
    """The finding one JSON log record is, if any."""
    report = entry.get("report")
    exc_text = str(entry.get("exc", ""))
    child = entry.get("child")
    child = None if child is None else str(child)
    reason = str(entry.get("reason", ""))
    message = str(entry.get("message", ""))
    kind: str | None = None
    if report == "crash":
        session = entry.get("supervisor") == "calls" and child is not None and child.startswith("call:")
        kind = "session_crash" if session else "crash"
    elif report in {"gave_up", "start_failed", "handler_removed"}:
        kind = str(report)
    elif entry.get("logger") == "switchd.otp" and message.startswith("application ") and entry.get("level") == "ERROR":
        kind = "stopped"
    elif "Traceback" in exc_text:
        # a call's own record (it names the call) stays with the call at fault, as its crash would
        kind = "call_fault" if entry.get("call_id") is not None else "traceback"
    if kind is None:
        return None
    where = _innermost(exc_text) if exc_text else "-"
    what = _exception_type(reason, exc_text)
    signature = f"{kind} {_child_kind(child)}: {what} at {where}"
    if kind in {"traceback", "call_fault"}:
        signature = f"{kind} logged by {entry.get('logger')} ({_plain(message)[:50]}): {what} at {where}"
    elif kind == "stopped":
        signature = f"stopped: {_plain(message)[:90]}"
    text = json.dumps({k: v for k, v in entry.items() if k != "exc"}, ensure_ascii=True)[:600]
    return Finding(kind, signature, _ts(entry), child, _tokens(reason, message, child or "", str(entry)), text)


def _tokens(*texts: str) -> tuple[str, ...]:
    """The fuzz tokens in `texts`, in order: the exception's reason names the culprit best."""
    found: list[str] = []
    for text in texts:
        found += [f"fz{seed}x{index}" for seed, index in _LOOSE_TOKEN.findall(text)]
    return tuple(dict.fromkeys(found))


@dataclass
class LogWatch:
    """Reads the daemon's log as it grows; `poll()` returns the new findings (see the module docstring)."""

    path: Path
    offset: int = 0
    _partial: bytes = b""
    _raw: list[str] = field(default_factory=list)  # a raw (non-JSON) block being collected

    def poll(self, *, final: bool = False) -> list[Finding]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        found: list[Finding] = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            entry = _json(line)
            if entry is None:
                if line.strip():
                    self._raw.append(line)
                continue
            found += self._flush_raw()
            finding = classify(entry)
            if finding is not None:
                found.append(finding)
        if final:
            found += self._flush_raw()
        return found

    def _flush_raw(self) -> list[Finding]:
        """Raw stderr lines between JSON records: a finding when they hold a traceback."""
        block, self._raw = "\n".join(self._raw), []
        if "Traceback" not in block:
            return []
        signature = f"raw traceback: {_exception_type('', block)} at {_innermost(block)}"
        return [Finding("traceback", signature, None, None, _tokens(block), block[-600:])]


def _json(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


class SpawnedNode:
    """`switchd run` and its `switchd sim` gateway on free 127.0.0.1 ports under `workdir`; see the module docstring."""

    def __init__(self, workdir: Path, *, udp: bool = False) -> None:
        self.workdir = workdir
        self.gateway_port = free_tcp_port()
        self.udp_port = free_udp_port() if udp else None  # the node listens on UDP there too
        sip = {"listen_udp": f"127.0.0.1:{self.udp_port}"} if udp else None
        self.cfg = write_config(workdir / "node", [GatewaySpec("gw1", self.gateway_port)], sip=sip)
        self.log_path = workdir / "switchd.log"
        self.daemons: list[Switchd] = []
        self.gateway: subprocess.Popen[bytes] | None = None
        # the children run this checkout's switchd, whatever is installed
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))

    @property
    def port(self) -> int:
        return self.cfg.sip_port

    @property
    def daemon(self) -> Switchd:
        return self.daemons[-1]

    def start(self) -> None:
        """The gateway (once), then a daemon; returns when the SIP port accepts connections."""
        if self.gateway is None:
            behaviours = self.workdir / "gateway.toml"
            behaviours.write_text(BEHAVIOURS, encoding="utf-8")
            self.gateway = subprocess.Popen(
                [sys.executable, "-m", "switchd", "sim", "--listen", f"127.0.0.1:{self.gateway_port}",
                 "--behaviours", str(behaviours), "--log-level", "ERROR"],
                cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=(self.workdir / "gateway.log").open("ab"))
            wait_for_tcp_port(self.gateway_port, timeout=20.0, proc=self.gateway)
        daemon = Switchd(self.cfg, self.log_path, args=("--log-format", "json"))
        self.daemons.append(daemon)
        daemon.start()

    def stop(self) -> int | None:
        """SIGTERM the daemon (SIGKILL after 15 s) and the gateway, by PID; the daemon's exit status."""
        code: int | None = None
        try:
            if self.daemons:
                code = self.daemon.stop(timeout=15.0)
        except AssertionError:
            code = None  # ignored SIGTERM: killed
        finally:
            if self.gateway is not None:
                end_process(self.gateway, signal.SIGTERM, timeout=5)
        return code

    def cdr_counts(self) -> dict[str, int]:
        """CDRs by status (read after the daemon stopped)."""
        counts: dict[str, int] = {}
        for cdr in read_cdrs(self.cfg.database_url):
            counts[cdr.status.value] = counts.get(cdr.status.value, 0) + 1
        return counts

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (a node given by --pid)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
