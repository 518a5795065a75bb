"""What the phone tests assume of switchd (issue 14), in one place, and the SIPp phones they run.

The tests in `test_phones_*.py` were written from the issue before its code existed. Every name
they rely on that the issue leaves open is fixed here, so that an implementation which chose
differently is met by one edit in this module, never by changing a test:

* `[sip] domain` (`DOMAIN`): the domain whose users switchd registers and calls. The phones use
  127.0.0.1 and put switchd's port in their URIs (`sip:alice@127.0.0.1:5060`): the registrar and
  the router match the host against the domain and take the user part as the account.
* `[sip] listen_udp`: SIP over UDP, on the same port number as TCP (so one AOR fits both).
* `[sip] digest_algorithms = ["MD5"]` (`DIGEST_MD5_ONLY`): the algorithms switchd challenges with.
  Neither tool speaks SHA-256: SIPp 3.6 refuses a challenge list whose first entry is not MD5,
  and baresip 1.0 (libre 1.1) fails the whole REGISTER when any WWW-Authenticate is not MD5.
* With `domain` set and no trusted ACL entry, every REGISTER is challenged 401 and every INVITE
  407 — even from 127.0.0.1, where the gateways are too (a gateway's address is not trusted
  implicitly). Without `domain` (every other test's configuration) nothing changes.
* `[[gateways]] transport = "udp"`.
* `[limits] per_ip_cps`/`per_ip_burst` bound REGISTERs from one address too (`FLOOD_LIMITS`);
  beyond them a REGISTER is answered 503 (or 429).
* `python -m switchd accounts add USER --config FILE --password-stdin`, the password on stdin, the
  realm from the configuration, run before the daemon starts (it opens and migrates the database
  like `switchd run` does).
* The CDR: `account` holds the authenticated user name (`cdr_account`), and nothing for a
  request that failed authentication; the number of re-INVITEs of the call is the column
  `REINVITES`. A challenge (401/407) writes no CDR: the INVITE sent again with credentials
  (same Call-ID) makes the call's one CDR.

Everything runs on 127.0.0.1, bounded in time; processes are stopped by their own PID.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from switchd.billing import Cdr
from switchd.config import load

from ._daemon import DaemonConfig, GatewaySpec, RouteSpec, Switchd, write_config
from ._sipp import SCENARIOS, SippCallee, SippStats, end_process, read_stats
from .conftest import StartSwitchd

DOMAIN = "127.0.0.1"
DIGEST_MD5_ONLY: Mapping[str, object] = {"digest_algorithms": ["MD5"]}
FLOOD_CPS, FLOOD_BURST = 10.0, 20  # REGISTERs a second from one address, and at once above it
FLOOD_LIMITS: Mapping[str, object] = {"per_ip_cps": FLOOD_CPS, "per_ip_burst": FLOOD_BURST}
REFUSED = frozenset({429, 503})  # what a REGISTER over the limits is answered
REINVITES = "reinvites"


def cdr_account(user: str) -> str:
    """What the CDR's `account` holds for a call authenticated as `user`."""
    return user


def reinvites(cdr: Cdr) -> int | None:
    """The CDR's count of re-INVITEs; None while the column does not exist."""
    value = getattr(cdr, REINVITES, None)
    return value if isinstance(value, int) else None


# --- ports ---------------------------------------------------------------------------------------


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_ports(count: int = 1) -> int:
    """The first of `count` consecutive ports on 127.0.0.1 free for both TCP and UDP a moment ago.

    switchd listens on one number for TCP and UDP; baresip takes its SIP port and the next one.
    """
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            first = int(sock.getsockname()[1])
        if first + count <= 65536 and all(_bindable(p) for p in range(first, first + count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports found on 127.0.0.1")


def _udp_bound(port: int) -> bool:
    # /proc/net/udp: "sl local_address rem_address st ...", the address as hex IP:PORT
    for table in (Path("/proc/net/udp"), Path("/proc/net/udp6")):
        if not table.exists():
            continue
        for line in table.read_text(encoding="ascii").splitlines()[1:]:
            fields = line.split()
            if len(fields) > 1 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_for_udp_port(port: int, *, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until a UDP socket is bound to `port` (a start-up barrier: UDP has no connect to try)."""
    deadline = time.monotonic() + timeout
    while not _udp_bound(port):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process {proc.args!r} exited with {proc.returncode} before binding UDP {port}")
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing bound UDP 127.0.0.1:{port} after {timeout}s")
        time.sleep(0.05)


# --- switchd for phones --------------------------------------------------------------------------


def phone_config(
    directory: Path,
    gateways: Sequence[GatewaySpec] = (),
    *,
    routes: Sequence[RouteSpec] | None = None,
    domain: bool = False,
    udp: bool = False,
    udp_gateways: Sequence[str] = (),
    limits: Mapping[str, object] | None = None,
) -> DaemonConfig:
    """`write_config` plus what phones need: the `domain` served (with MD5 digest), a UDP listener
    on the SIP port's number (`udp`), gateways reached over UDP (`udp_gateways`, by name) and more
    `[limits]`. Without gateways there are no routes: only registered users can be called.
    Raises switchd's ConfigError while the daemon does not know a key it writes.
    """
    port = free_ports()
    sip: dict[str, object] = {}
    if domain:
        sip |= {"domain": DOMAIN, **DIGEST_MD5_ONLY}
    if udp:
        sip["listen_udp"] = f"127.0.0.1:{port}"
    if routes is None and not gateways:
        routes = []
    cfg = write_config(directory, gateways, routes=routes, sip_port=port, sip=sip)
    if not (udp_gateways or limits):
        return cfg
    text = cfg.path.read_text(encoding="utf-8")
    for name in udp_gateways:
        named = f'name = "{name}"\n'
        assert named in text, f"no gateway {name!r} in {cfg.path}"
        text = text.replace(named, named + 'transport = "udp"\n', 1)
    if limits:
        more = "".join(f"{key} = {value!r}\n" for key, value in limits.items())
        text = text.replace("[limits]\n", "[limits]\n" + more, 1)
    cfg.path.write_text(text, encoding="utf-8")
    return DaemonConfig(path=cfg.path, sip_port=port, config=load(cfg.path))


def start_phone_switchd(start_switchd: StartSwitchd, cfg: DaemonConfig, *, name: str = "switchd") -> Switchd:
    """Run switchd with `cfg` (from `phone_config`), ended by the fixture like its own daemons;
    returns once TCP accepts and, when configured, UDP is bound."""
    daemon = Switchd(cfg, start_switchd.tmp_path / f"{name}.stderr")
    start_switchd.started.append(daemon)
    daemon.start()
    if "listen_udp" in cfg.path.read_text(encoding="utf-8"):
        try:
            wait_for_udp_port(cfg.sip_port, proc=daemon.proc)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- switchd log ---\n{daemon.log()}") from None
    return daemon


def add_account(cfg: DaemonConfig, user: str, password: str) -> None:
    """`switchd accounts add USER` on the database of `cfg`, the password on stdin (never argv)."""
    proc = subprocess.run(
        [sys.executable, "-m", "switchd", "accounts", "add", user, "--config", str(cfg.path), "--password-stdin"],
        input=f"{password}\n", capture_output=True, text=True, timeout=60, cwd=cfg.path.parent, check=False)
    assert proc.returncode == 0, (f"switchd accounts add {user}: exit {proc.returncode}\n"
                                  f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    assert password not in proc.stdout + proc.stderr, "accounts add echoed the password"


def assert_no_secret(switchd: Switchd, *secrets: str) -> None:
    """No password appears anywhere in the daemon's log."""
    log = switchd.log(tail=1_000_000)
    leaked = [s for s in secrets if s in log]
    assert not leaked, f"switchd logged a password: {leaked}"


def options_status(port: int, *, timeout: float = 10.0) -> int:
    """The status of switchd's answer to an OPTIONS on a new TCP connection to 127.0.0.1:`port`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        local = sock.getsockname()[1]
        sock.sendall((
            f"OPTIONS sip:{DOMAIN}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 127.0.0.1:{local};branch=z9hG4bK-phones-ping\r\n"
            f"From: <sip:ping@127.0.0.1>;tag=ping\r\nTo: <sip:{DOMAIN}:{port}>\r\n"
            "Call-ID: phones-ping\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                raise AssertionError(f"switchd closed the connection without answering OPTIONS: {answer!r}")
            answer += chunk
    return int(answer.split(b" ", 2)[1])


# --- SIPp phones ---------------------------------------------------------------------------------


def _sipp_args(workdir: Path, name: str, transport: str) -> list[str]:
    return ["-i", "127.0.0.1", "-t", transport, "-nostdin", "-max_socket", "100",
            "-trace_err", "-error_file", str(workdir / f"{name}_errors.log"),
            "-trace_stat", "-stf", str(workdir / f"{name}_stat.csv"), "-fd", "1"]


class UdpSippCallee(SippCallee):
    """A SIPp UAS on UDP 127.0.0.1:`port` (`-t u1`) until stopped by its PID; see SippCallee."""

    def __init__(self, sipp: Path, workdir: Path, *, port: int, name: str = "uas_udp",
                 hold_ms: int = 0, timeout_s: int = 120) -> None:
        # SippCallee waits for a TCP listener; this one only binds UDP.
        self.port, self.name, self.workdir = port, name, workdir
        args = [str(sipp), "-sn", "uas", "-p", str(port), *_sipp_args(workdir, name, "u1"),
                "-d", str(hold_ms), "-timeout", f"{timeout_s}s"]
        self.proc = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL,
                                     stderr=(workdir / f"{name}.stderr").open("wb"))
        wait_for_udp_port(port, proc=self.proc)


class SippRegistrant:
    """A SIPp phone (TCP) that registers `user` to switchd with digest and answers calls to it.

    It plays uac_register.xml once (`-m 1`; REGISTER, 401, REGISTER with credentials, 200) and
    then stays registered for `stay_s`; calls that arrive at its Contact are answered by
    uas_registered.xml, its out-of-call scenario. `wait_registered` waits for the file the
    scenario touches on its 200, `answered` reads the Call-IDs it answered, `stop` ends it.
    """

    def __init__(self, sipp: Path, workdir: Path, target: str, *, user: str, password: str,
                 port: int, stay_s: int = 60) -> None:
        self.workdir = workdir
        self.user = user
        self.port = port  # where its Contact points: calls to the user arrive here
        self.name = f"phone_{user}"
        args = [str(sipp), target, "-sf", str(SCENARIOS / "uac_register.xml"),
                "-oocsf", str(SCENARIOS / "uas_registered.xml"),
                "-key", "user", user, "-au", user, "-ap", password, "-p", str(port),
                *_sipp_args(workdir, self.name, "t1"), "-m", "1", "-d", str(stay_s * 1000),
                "-timeout", f"{stay_s + 30}s"]
        self.proc = subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=(workdir / f"{self.name}.stderr").open("wb"))

    def wait_registered(self, *, timeout: float = 15.0) -> None:
        """Return once switchd answered the authenticated REGISTER 200 with the binding."""
        flag = self.workdir / f"{self.user}.registered"
        deadline = time.monotonic() + timeout
        while not flag.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.user} did not register (SIPp exit {self.proc.poll()})\n"
                                     f"{self.errors()}")
            time.sleep(0.05)

    def answered(self) -> list[str]:
        """The Call-IDs of the calls this phone answered, in order."""
        path = self.workdir / f"{self.user}.answered"
        return path.read_text(encoding="latin-1").split() if path.exists() else []

    def errors(self) -> str:
        path = self.workdir / f"{self.name}_errors.log"
        return path.read_text(encoding="latin-1")[-3000:] if path.exists() else "(no SIPp errors)"

    def stop(self) -> SippStats:
        """End it by SIGTERM (SIPp writes its statistics and exits at once; SIGUSR1 would wait
        out the registration's pause), SIGKILL after 5 s; its statistics."""
        end_process(self.proc, signal.SIGTERM, timeout=5)
        return read_stats(self.workdir / f"{self.name}_stat.csv")
