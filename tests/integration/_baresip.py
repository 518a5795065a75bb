"""baresip (Debian `baresip-core` 1.0) as a headless softphone driven by the tests.

Each phone gets its own configuration directory (`baresip -f DIR`): one account, SIP on
127.0.0.1 (baresip takes its SIP port for UDP and TCP and the next one for TLS), no sound card
(the `ausine` module is the microphone, an `aubridge` device with nobody listening the speaker),
G.711 only, and the `ctrl_tcp` module listening on 127.0.0.1. `-s` writes every SIP message it
sends or receives to its stdout, which goes to `<name>.out`.

`ctrl_tcp` speaks netstrings (`LEN:DATA,`) of JSON both ways:

* a command `{"command": "dial", "params": "sip:bob@...", "token": "7"}` is answered
  `{"response": true, "ok": true, "data": "...", "token": "7"}`; 1.0 has the `menu` module's
  commands (`dial`, `hangup`, `hold`, `resume`, `accept`, `listcalls`, `reginfo`, …) and `quit`;
* events arrive unasked: `{"event": true, "class": "register"|"call"|…, "type": "REGISTER_OK",
  "accountaor": ..., "param": ...}` — REGISTER_OK/REGISTER_FAIL, CALL_RINGING,
  CALL_ESTABLISHED, CALL_CLOSED, and CALL_REMOTE_SDP with param "offer" or "answer" each time
  an SDP arrives (a re-INVITE's offer at the held phone, its answer at the holding one).

`Baresip.command` sends one and waits for its response; `wait_event` waits for an event after a
mark. Every wait has a deadline; `stop` sends `quit` (baresip un-registers and exits), then
SIGTERM and SIGKILL by PID.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._phones import free_ports
from ._sipp import end_process, wait_for_tcp_port

Transport = Literal["tcp", "udp"]

_CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{sip_port}
net_interface		127.0.0.1
call_local_timeout	120
call_max_calls		4
audio_source		ausine,440
ausrc_srate		48000
ausrc_channels		2
audio_player		aubridge,nobody
audio_alert		aubridge,nobody
statmode_default	off
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:{ctrl_port}
"""


@dataclass(frozen=True, slots=True)
class Event:
    """One ctrl_tcp event: its `type` (REGISTER_OK, CALL_ESTABLISHED …), `param`, the whole JSON."""

    type: str
    param: str
    raw: dict[str, object]


@dataclass(frozen=True, slots=True)
class SipTrace:
    """One SIP message baresip's `-s` trace shows: transport, `src` and `dst` ("ip:port"), text."""

    transport: str
    src: str
    dst: str
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()

    @property
    def cseq(self) -> str:
        found = re.search(r"^CSeq:\s*(.+?)\s*$", self.text, re.MULTILINE | re.IGNORECASE)
        return found.group(1) if found else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REGISTERED = re.compile(r"^> \S+\s+OK\b", re.MULTILINE)  # a `reginfo` line: the account is registered
_TRACE = re.compile(r"\x1b\[36;1m#\n(\w+) (\S+) -> (\S+)\n(.*?)\x1b\[;m", re.DOTALL)


class Baresip:
    """One headless baresip with one account; see the module docstring.

    `aor` is the account's address (`sip:alice@127.0.0.1:5060;transport=tcp`), with `password`
    for digest (None: no authentication) and `regint` seconds between registrations (0: it
    never registers). `answer` is its answer mode for incoming calls ("auto" answers at once).
    """

    def __init__(self, binary: Path, workdir: Path, *, name: str, aor: str, password: str | None = None,
                 regint: int = 600, answer: Literal["auto", "manual"] = "manual") -> None:
        self.name = name
        self.directory = workdir / name
        self.directory.mkdir(parents=True)
        self.sip_port = free_ports(2)
        self.ctrl_port = free_ports()
        while self.ctrl_port in (self.sip_port, self.sip_port + 1):  # both free until baresip binds them
            self.ctrl_port = free_ports()
        self.output_path = workdir / f"{name}.out"
        (self.directory / "config").write_text(
            _CONFIG.format(sip_port=self.sip_port, ctrl_port=self.ctrl_port), encoding="utf-8")
        params = [f"regint={regint}", f"answermode={answer}", "audio_codecs=PCMU"]
        if password is not None:
            params.append(f"auth_pass={password}")
        (self.directory / "accounts").write_text(f"<{aor}>;{';'.join(params)}\n", encoding="utf-8")
        self._tokens = itertools.count(1)
        self._buffer = b""
        self.events: list[Event] = []
        self._responses: dict[str, dict[str, object]] = {}
        self.proc = subprocess.Popen([str(binary), "-s", "-f", str(self.directory)], cwd=workdir,
                                     stdin=subprocess.DEVNULL, stdout=self.output_path.open("wb"),
                                     stderr=subprocess.STDOUT)
        try:
            wait_for_tcp_port(self.ctrl_port, proc=self.proc)
            self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=5)
        except (AssertionError, OSError) as exc:
            end_process(self.proc, signal.SIGKILL, timeout=5)
            raise AssertionError(f"baresip {name} did not start: {exc}\n{self.output()}") from None

    @property
    def address(self) -> str:
        """Where this phone receives SIP: 127.0.0.1:<its SIP port>."""
        return f"127.0.0.1:{self.sip_port}"

    # --- ctrl_tcp ---------------------------------------------------------------------------

    def _pump(self, timeout: float) -> bool:
        """Wait up to `timeout` s (0: not at all) for bytes from ctrl_tcp and file every complete
        message; whether any bytes came."""
        self._sock.settimeout(max(timeout, 0.0))
        try:
            chunk = self._sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return False
        if not chunk:
            raise AssertionError(f"baresip {self.name} closed its control connection\n{self.output()}")
        self._buffer += chunk
        while self._take():
            pass
        return True

    def _take(self) -> bool:
        length, colon, rest = self._buffer.partition(b":")
        if not colon or not length.isdigit() or len(rest) < int(length) + 1:
            return False
        size = int(length)
        message = json.loads(rest[:size])
        self._buffer = rest[size + 1:]  # the netstring's trailing ","
        if message.get("event"):
            self.events.append(Event(str(message.get("type", "")), str(message.get("param", "")), message))
        elif message.get("response"):
            self._responses[str(message.get("token"))] = message
        return True

    def command(self, command: str, params: str | None = None, *, timeout: float = 10.0) -> str:
        """Run a ctrl_tcp command and return its `data`; AssertionError if baresip says not ok."""
        token = str(next(self._tokens))
        request: dict[str, str] = {"command": command, "token": token}
        if params is not None:
            request["params"] = params
        data = json.dumps(request).encode()
        self._sock.sendall(str(len(data)).encode() + b":" + data + b",")
        deadline = time.monotonic() + timeout
        while token not in self._responses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"baresip {self.name}: no answer to {command!r} in {timeout}s")
            self._pump(min(left, 0.5))
        response = self._responses.pop(token)
        assert response.get("ok") is True, f"baresip {self.name}: {command} {params or ''} failed: {response}"
        return str(response.get("data", ""))

    def mark(self) -> int:
        """A position in the event list: `wait_event(..., after=mark)` looks at later events only."""
        while self._pump(0):  # what already arrived belongs before the mark
            pass
        return len(self.events)

    def wait_event(self, type_: str, *, param: str | None = None, after: int = 0,
                   fail_on: Iterable[str] = ("CALL_CLOSED",), timeout: float = 10.0) -> Event:
        """The first event of `type_` (with `param`, when given) after position `after`.

        AssertionError with the events seen and baresip's output when a `fail_on` event comes
        first or nothing comes within `timeout` s.
        """
        failing = set(fail_on)
        deadline = time.monotonic() + timeout
        seen = after
        while True:
            for event in self.events[seen:]:
                seen += 1
                if event.type == type_ and (param is None or event.param == param):
                    return event
                if event.type in failing:
                    raise AssertionError(f"baresip {self.name}: {event.type} ({event.param}) while waiting "
                                         f"for {type_}\n{self.describe(after)}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"baresip {self.name}: no {type_} {param or ''} in {timeout}s\n"
                                     f"{self.describe(after)}")
            self._pump(min(left, 0.5))

    def wait_registered(self, *, timeout: float = 10.0) -> None:
        """Return once the account is registered; AssertionError on REGISTER_FAIL or after `timeout` s.

        baresip registers as soon as it starts — with a registrar on this host, often before the
        control connection exists — and ctrl_tcp does not replay the REGISTER_OK it sent to nobody:
        so either the event, or `reginfo` showing the account OK, counts.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.mark()
            for event in self.events:
                if event.type == "REGISTER_FAIL":
                    raise AssertionError(f"baresip {self.name}: REGISTER_FAIL ({event.param})\n{self.describe()}")
                if event.type == "REGISTER_OK":
                    return
            if _REGISTERED.search(_ANSI.sub("", self.command("reginfo"))):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"baresip {self.name}: not registered in {timeout}s\n{self.describe()}")
            self._pump(0.2)

    def describe(self, after: int = 0) -> str:
        """The events since `after`, for a failure message (RTCP reports left out)."""
        return "events: " + ", ".join(f"{e.type}({e.param})" for e in self.events[after:]
                                      if e.type != "CALL_RTCP")

    # --- the end ------------------------------------------------------------------------------

    def stop(self, *, timeout: float = 10.0) -> int:
        """`quit` (un-registers first), then SIGTERM, then SIGKILL, each bounded; the exit status."""
        if self.proc.poll() is None:
            try:
                self.command("quit", timeout=timeout)
            except (AssertionError, OSError):
                pass  # it may close the control connection before it answers; the wait decides
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                end_process(self.proc, signal.SIGTERM, timeout=5)
        self._sock.close()
        return self.proc.returncode

    def output(self) -> str:
        """What baresip wrote (complete once it exited: it buffers its stdout)."""
        if not self.output_path.exists():
            return "(no output)"
        return self.output_path.read_text(encoding="utf-8", errors="replace")[-6000:]

    def sip_trace(self) -> list[SipTrace]:
        """Every SIP message of its `-s` trace, in order (read after `stop`)."""
        text = self.output_path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        return [SipTrace(*match.groups()) for match in _TRACE.finditer(text)]

    def received(self, peer: str) -> list[SipTrace]:
        """The messages it received, talking only to `peer` ("ip:port", where the peer listens).

        A trace line reads `TRANSPORT src -> dst`, with this phone's side of a TCP connection it
        opened at a port of the kernel's choosing: a message came in when it came from where the
        peer listens or went to where this phone does.
        """
        return [m for m in self.sip_trace() if m.src == peer or m.dst == self.address]
