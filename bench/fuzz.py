"""A seeded mutation fuzzer against a live `switchd run`: the node must stay up and keep answering.

    python bench/fuzz.py --seed 1 --messages 2000 --spawn
    python bench/fuzz.py --seed 1 --messages 100000 --spawn --keep-going --save-dir /tmp/fuzz-1
    python bench/fuzz.py --seed 1 --only 4711 --spawn          # message 4711 of seed 1, alone
    python bench/fuzz.py --seed 1 --messages 5000 --target 127.0.0.1:5060 --log switchd.log --pid 1234
    python bench/fuzz.py --seed 1 --messages 2000 --spawn --udp        # the same messages as UDP datagrams

It sends `--messages` mutated SIP messages (see _fuzz_corpus: realistic INVITE/OPTIONS/BYE/REGISTER
seeds, structural and byte-level mutations, split writes) over `--connections` TCP connections,
reopening a connection the node closed. It behaves as a caller where the node answers: a 200 to
an INVITE is ACKed and the call hung up, the node's BYE is answered. After every `--chunk`
messages, and at the end, it checks the node: a clean OPTIONS on a fresh connection must get a
200 within 1 s, the daemon must still be the same PID, and its log must show no crash of a
process that is not a call session, no supervisor that gave up, no traceback outside a call
session's crash report (see _fuzz_node). It prints a summary and exits 1 if any check failed.

With `--udp` every message is one datagram to the node's UDP address (`sip.listen_udp`) from one
of `--connections` UDP sockets, its Via saying UDP; split messages go whole and nothing is closed
(a datagram has no stream to desynchronise); the ACKs, BYEs, answers and probes go over UDP too,
and a datagram over the 65,507 bytes UDP carries is counted as not sent.

The messages are a pure function of (seed, index): two runs with one seed send the same bytes in
the same order on the same connection slots. What the node answers (and so our ACK/BYEs) may
differ with timing; a finding names the message that triggered it, which `--only` replays.

With `--spawn` it starts its own node (and gateway) on free 127.0.0.1 ports in a temp dir and
stops them by PID at the end; with `--keep-going` a dead node is restarted on the same config
and the run goes on (for the long bench runs: every fault is counted, not just the first).
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fuzz_corpus import FuzzMessage, MutationCounts, build
from _fuzz_node import Finding, LogWatch, SpawnedNode, pid_alive
from _fuzz_wire import Frame, FrameReader, ack_and_bye, ok_to, options_probe

PROBE_TIMEOUT = 1.0  # a clean OPTIONS must be answered within this
SEND_TIMEOUT = 5.0  # a write the node does not take within this is a stall
SPLIT_PAUSE = 0.002  # between the writes of a split message, so they reach the node apart
ALLOWED = frozenset({"session_crash", "call_fault"})  # the fault stayed in the call that caused it


@dataclass
class Sent:
    """When each message went out and on which local port: to trace a log record back to its message."""

    times: list[float] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    _by_index: dict[int, int] = field(default_factory=dict)

    def add(self, index: int, port: int) -> None:
        self.times.append(time.time())
        self.indexes.append(index)
        self.ports.append(port)
        self._by_index[index] = len(self.times) - 1

    def of(self, index: int) -> tuple[float, int] | None:
        """When message `index` went out, and on which local port."""
        at = self._by_index.get(index)
        return None if at is None else (self.times[at], self.ports[at])

    def last_before(self, ts: float | None, port: int | None = None) -> int | None:
        end = len(self.times) if ts is None else bisect.bisect_right(self.times, ts + 0.001)
        for i in range(end - 1, -1, -1):
            if port is None or self.ports[i] == port:
                return self.indexes[i]
        return None


@dataclass
class Stats:
    """Everything the summary reports."""

    messages: int = 0
    sent_bytes: int = 0
    split: int = 0
    follow_ups: int = 0
    answered_requests: int = 0
    responses: Counter[int] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    opened: int = 0
    closed_by_node: int = 0
    closed_by_us: int = 0
    refused: int = 0
    send_stalls: int = 0
    unframed: int = 0
    invites_provisional: set[bytes] = field(default_factory=set)  # Call-IDs of INVITEs answered 1xx
    invites_final: set[bytes] = field(default_factory=set)  # ... and those answered finally
    probes: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    faults: dict[str, list[tuple[Finding, int | None]]] = field(default_factory=dict)
    session_crashes: dict[str, list[tuple[Finding, int | None]]] = field(default_factory=dict)
    node_deaths: int = 0
    mutations: MutationCounts = field(default_factory=MutationCounts)
    cdrs: dict[str, int] | None = None  # by status, read after the spawned node stopped
    exit_status: int | None = None


@dataclass
class Conn:
    slot: int
    stream: trio.SocketStream
    local_port: int
    lock: trio.Lock = field(default_factory=trio.Lock)
    closed: bool = False


@dataclass
class UdpConn:
    """A `Conn` slot over UDP: one socket of ours, which the node answers to."""

    slot: int
    sock: trio.socket.SocketType
    local_port: int
    closed: bool = False


C = TypeVar("C", Conn, UdpConn)


class Fuzzer(Generic[C]):
    """One run; see the module docstring. The transport's part is a subclass's (TCP or UDP)."""

    def __init__(self, args: argparse.Namespace, port: int, stats: Stats) -> None:
        self.args = args
        self.port = port
        self.stats = stats
        self.sent = Sent()
        self.bye_sent: set[bytes] = set()
        self.nursery: trio.Nursery | None = None

    # --- connections ---------------------------------------------------------------------------------

    def count(self, message: FuzzMessage, local_port: int, size: int) -> None:
        """Note that `message` went out from `local_port` (`size` bytes): the stats, and for attribution."""
        self.sent.add(message.index, local_port)
        self.stats.messages += 1
        self.stats.sent_bytes += size
        self.stats.mutations.add(message)

    def _handle(self, conn: C, frame: Frame) -> None:
        """Count what the node sent; do what a caller would (ACK and hang up a 200, answer a BYE)."""
        assert self.nursery is not None
        status = frame.status
        if status is not None:
            self.stats.responses[status] += 1
            cseq = frame.cseq
            if cseq is not None and cseq[1] == b"INVITE":
                book = self.stats.invites_provisional if status < 200 else self.stats.invites_final
                book.add(frame.get(b"call-id") or b"")
            if status // 100 == 2 and cseq is not None and cseq[1] == b"INVITE":
                pair = self.follow_up(frame, conn)
                if pair is not None:
                    ack, bye = pair
                    call_id = frame.get(b"call-id") or b""
                    chunks = [ack] if call_id in self.bye_sent else [ack, bye]
                    self.bye_sent.add(call_id)
                    self.stats.follow_ups += len(chunks)
                    self.nursery.start_soon(self._write, conn, chunks)
            return
        method = frame.method.decode("latin-1")
        self.stats.requests[method] += 1
        if method not in {"ACK", "CANCEL"}:
            answer = ok_to(frame)
            if answer is not None:
                self.stats.answered_requests += 1
                self.nursery.start_soon(self._write, conn, [answer])

    def attribute(self, finding: Finding) -> int | None:
        """The message that most likely caused `finding`.

        A token in the record names it, unless a mutation wrote into the token itself (fz1x12 of
        fz1x12\\n34), so a token counts only if its message went out on the crashed connection, or
        (for other processes) shortly before the record; otherwise the connection's last message
        before the record, or the last message of all.
        """
        port = None
        if finding.child is not None and finding.child.startswith("sip 127.0.0.1:"):
            tail = finding.child.rpartition(":")[2]
            port = int(tail) if tail.isdigit() else None
        prefix = f"fz{self.args.seed}x"
        for token in finding.tokens:
            if not token.startswith(prefix):
                continue
            sent = self.sent.of(int(token[len(prefix):]))
            if sent is None:
                continue
            at, on = sent
            recent = finding.ts is None or finding.ts - 30 <= at <= finding.ts + 0.01
            if (on == port) if port is not None else recent:
                return int(token[len(prefix):])
        return self.sent.last_before(finding.ts, port)

    def record(self, findings: list[Finding]) -> int:
        """File the findings of the log; the number that break the promise (session crashes do not)."""
        bad = 0
        for finding in findings:
            allowed = finding.kind in ALLOWED
            book = self.stats.session_crashes if allowed else self.stats.faults
            book.setdefault(finding.signature, []).append((finding, self.attribute(finding)))
            bad += not allowed
        return bad

    # --- the transport's part ------------------------------------------------------------------------

    async def send(self, message: FuzzMessage) -> bool:
        """Write one fuzz message on its slot's connection; False when no connection could be had."""
        raise NotImplementedError

    async def reset(self) -> None:
        """Close every connection (the node was restarted)."""
        raise NotImplementedError

    async def probe(self) -> str | None:
        """A clean OPTIONS: None if its 200 came within PROBE_TIMEOUT, else what went wrong."""
        raise NotImplementedError

    async def _write(self, conn: C, chunks: list[bytes]) -> bool:
        raise NotImplementedError

    def follow_up(self, ok: Frame, conn: C) -> tuple[bytes, bytes] | None:
        """The ACK and BYE a caller sends for the 200 `ok` on `conn`."""
        raise NotImplementedError


class TcpFuzzer(Fuzzer[Conn]):
    """`Fuzzer` over TCP: a connection per slot, reopened when the node closes it."""

    def __init__(self, args: argparse.Namespace, port: int, stats: Stats) -> None:
        super().__init__(args, port, stats)
        self.conns: dict[int, Conn] = {}

    async def _conn(self, slot: int) -> Conn | None:
        conn = self.conns.get(slot)
        if conn is not None and not conn.closed:
            return conn
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        except OSError:
            self.stats.refused += 1
            return None
        conn = Conn(slot, stream, stream.socket.getsockname()[1])
        self.conns[slot] = conn
        self.stats.opened += 1
        assert self.nursery is not None
        self.nursery.start_soon(self._read, conn)
        return conn

    async def _close(self, conn: Conn) -> None:
        if not conn.closed:
            conn.closed = True
            self.stats.closed_by_us += 1
            await conn.stream.aclose()

    async def reset(self) -> None:
        """Close every connection (the node was restarted)."""
        for conn in list(self.conns.values()):
            if not conn.closed:
                conn.closed = True
                await conn.stream.aclose()
        self.conns.clear()

    async def _write(self, conn: Conn, chunks: list[bytes]) -> bool:
        async with conn.lock:
            for n, chunk in enumerate(chunks):
                if conn.closed:
                    return False
                if n:
                    await trio.sleep(SPLIT_PAUSE)
                with trio.move_on_after(SEND_TIMEOUT) as scope:
                    try:
                        await conn.stream.send_all(chunk)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        conn.closed = True
                        return False
                if scope.cancelled_caught:
                    self.stats.send_stalls += 1
                    await self._close(conn)
                    return False
        return True

    async def send(self, message: FuzzMessage) -> bool:
        """Write one fuzz message on its slot's connection; False when no connection could be had."""
        conn = await self._conn(message.slot)
        if conn is None:
            return False
        self.count(message, conn.local_port, len(message.data))
        self.stats.split += bool(message.splits)
        await self._write(conn, message.chunks())
        if message.close_after:
            await self._close(conn)
        return True

    async def _read(self, conn: Conn) -> None:
        reader = FrameReader()
        try:
            while True:
                data = await conn.stream.receive_some(65536)
                if not data:
                    break
                for frame in reader.feed(data):
                    self._handle(conn, frame)
        except trio.ClosedResourceError:
            return  # we closed it
        except trio.BrokenResourceError:
            pass  # reset by the node
        finally:
            self.stats.unframed += reader.malformed
        if not conn.closed:
            conn.closed = True
            self.stats.closed_by_node += 1
            await conn.stream.aclose()

    def follow_up(self, ok: Frame, conn: Conn) -> tuple[bytes, bytes] | None:
        """The ACK and BYE a caller sends for the 200 `ok` on `conn`."""
        return ack_and_bye(ok, local_port=conn.local_port, node_port=self.port)

    # --- checks --------------------------------------------------------------------------------------

    async def probe(self) -> str | None:
        """A clean OPTIONS on a fresh connection: None if 200 came within PROBE_TIMEOUT, else what went wrong."""
        started = time.monotonic()
        with trio.move_on_after(PROBE_TIMEOUT):
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            except OSError as exc:
                return f"clean OPTIONS: cannot connect ({exc})"
            async with stream:
                data, call_id = options_probe(self.port, stream.socket.getsockname()[1])
                reader = FrameReader()
                while True:
                    try:
                        if data:
                            await stream.send_all(data)
                            data = b""
                        chunk = await stream.receive_some(65536)
                    except trio.BrokenResourceError:
                        chunk = b""
                    if not chunk:
                        return "clean OPTIONS: the node closed the connection without answering"
                    for frame in reader.feed(chunk):
                        if frame.get(b"call-id") == call_id and frame.status is not None and frame.status >= 200:
                            if frame.status != 200:
                                return f"clean OPTIONS: answered {frame.status}, not 200"
                            self.stats.probes.append(time.monotonic() - started)
                            return None
        return f"clean OPTIONS: no answer within {PROBE_TIMEOUT:g}s"


class UdpFuzzer(Fuzzer[UdpConn]):
    """`Fuzzer` over UDP (`--udp`): a datagram per message, per ACK/BYE and per answer; probes too."""

    MAX_DATAGRAM = 65_507  # what an IPv4 UDP datagram carries

    def __init__(self, args: argparse.Namespace, port: int, stats: Stats) -> None:
        super().__init__(args, port, stats)
        self.sockets: dict[int, UdpConn] = {}

    async def _conn(self, slot: int) -> UdpConn | None:
        conn = self.sockets.get(slot)
        if conn is not None:
            return conn
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        conn = UdpConn(slot, sock, sock.getsockname()[1])
        self.sockets[slot] = conn
        self.stats.opened += 1
        assert self.nursery is not None
        self.nursery.start_soon(self._read, conn)
        return conn

    async def reset(self) -> None:
        for conn in self.sockets.values():
            conn.closed = True
            conn.sock.close()
        self.sockets.clear()

    async def _write(self, conn: UdpConn, chunks: list[bytes]) -> bool:
        for chunk in chunks:
            if conn.closed:
                return False
            try:
                await conn.sock.sendto(chunk, ("127.0.0.1", self.port))
            except OSError:  # EMSGSIZE and the like: nothing went out
                self.stats.refused += 1
                return False
        return True

    async def send(self, message: FuzzMessage) -> bool:
        conn = await self._conn(message.slot)
        if conn is None:
            return False
        data = message.data.replace(b"SIP/2.0/TCP ", b"SIP/2.0/UDP ")
        if len(data) > self.MAX_DATAGRAM:
            self.stats.refused += 1  # counted, not sent: more than UDP carries
            return True
        self.count(message, conn.local_port, len(data))
        await self._write(conn, [data])
        return True

    async def _read(self, conn: UdpConn) -> None:
        try:
            while True:
                data, _ = await conn.sock.recvfrom(65_536)
                reader = FrameReader()  # a datagram is a frame of its own
                for frame in reader.feed(data):
                    self._handle(conn, frame)
                self.stats.unframed += reader.malformed
        except (trio.ClosedResourceError, OSError):
            return  # we closed it (reset)

    def follow_up(self, ok: Frame, conn: UdpConn) -> tuple[bytes, bytes] | None:
        return ack_and_bye(ok, local_port=conn.local_port, node_port=self.port, transport=b"UDP")

    async def probe(self) -> str | None:
        """A clean OPTIONS from a fresh socket, sent again after 0.5 s as a UDP client would (a datagram
        the kernel dropped from a full buffer is UDP's, not the node's): its 200 within PROBE_TIMEOUT."""
        started = time.monotonic()
        with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
            await sock.bind(("127.0.0.1", 0))
            data, call_id = options_probe(self.port, sock.getsockname()[1], transport=b"UDP")
            with trio.move_on_after(PROBE_TIMEOUT):
                resend_at = trio.current_time()
                while True:
                    if trio.current_time() >= resend_at:  # T1: a UDP client sends its request again
                        await sock.sendto(data, ("127.0.0.1", self.port))
                        resend_at = trio.current_time() + 0.5
                    with trio.move_on_at(resend_at):
                        answer, _ = await sock.recvfrom(65_536)
                    if trio.current_time() >= resend_at:
                        continue
                    for frame in FrameReader().feed(answer):
                        if frame.get(b"call-id") == call_id and frame.status is not None and frame.status >= 200:
                            if frame.status != 200:
                                return f"clean OPTIONS over UDP: answered {frame.status}, not 200"
                            self.stats.probes.append(time.monotonic() - started)
                            return None
        return f"clean OPTIONS over UDP: no answer within {PROBE_TIMEOUT:g}s"


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where the node is and how to see it: a spawned node, or an address with optional log and PID."""

    port: int
    pid: int | None
    log: LogWatch | None
    spawned: SpawnedNode | None = None

    def alive(self) -> bool:
        if self.spawned is not None:
            return self.spawned.daemon.alive() and self.spawned.daemon.pid == self.pid
        return self.pid is None or pid_alive(self.pid)


async def checkpoint(fuzzer: Fuzzer[Any], target: Target, *, final: bool = False) -> bool:
    """Probe, PID and log checks after a chunk; with --keep-going a dead spawned node is restarted."""
    stats, ok = fuzzer.stats, True
    problem = await fuzzer.probe()
    if problem is not None:
        stats.failures.append(f"after message {fuzzer.stats.messages}: {problem}")
        ok = False
    alive = target.alive()
    if not alive:
        stats.failures.append(f"after message {fuzzer.stats.messages}: the node (pid {target.pid}) is gone")
        ok = False
    if target.log is not None:
        await trio.sleep(0.05)  # records written while we probed
        if fuzzer.record(target.log.poll(final=final or not alive)):
            stats.failures.append(f"after message {fuzzer.stats.messages}: crash or traceback in the node's log")
            ok = False
    if not alive and fuzzer.args.keep_going and target.spawned is not None and not final:
        stats.node_deaths += 1
        await fuzzer.reset()
        await trio.to_thread.run_sync(target.spawned.start)
        target.pid = target.spawned.daemon.pid
    return ok


async def fuzz(fuzzer: Fuzzer[Any], target: Target) -> None:
    """Send the run's messages with a checkpoint after every chunk and at the end."""
    args = fuzzer.args
    indexes = args.only if args.only else range(args.messages)
    async with trio.open_nursery() as nursery:
        fuzzer.nursery = nursery
        started = trio.current_time()
        for n, index in enumerate(indexes, 1):
            message = build(args.seed, index, port=target.port, connections=args.connections)
            if not await fuzzer.send(message) and not await checkpoint(fuzzer, target) and not args.keep_going:
                break
            if args.rate > 0:
                await trio.sleep_until(started + n / args.rate)
            if n % args.chunk == 0 and not await checkpoint(fuzzer, target) and not args.keep_going:
                break
        await trio.sleep(args.settle)  # answered calls get their ACK and BYE
        await checkpoint(fuzzer, target, final=True)
        await fuzzer.reset()
        nursery.cancel_scope.cancel()


# --- the summary -----------------------------------------------------------------------------------------


def _example(args: argparse.Namespace, port: int, index: int | None) -> list[str]:
    if index is None:
        return ["      (no message could be named)"]
    message = build(args.seed, index, port=port, connections=args.connections)
    lines = [(f"      message #{index} ({message.seed_kind}; {', '.join(message.mutations) or 'clean'}); "
             f"replay: python bench/fuzz.py --seed {args.seed} --only {index} --spawn")]
    if args.save_dir is not None:
        path = Path(args.save_dir) / f"seed{args.seed}-msg{index}.sip"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(message.data)
        lines.append(f"      saved as {path}")
    shown = repr(message.data[:300]) + (f" … ({len(message.data)} bytes)" if len(message.data) > 300 else "")
    return [*lines, f"      {shown}"]


def _book(args: argparse.Namespace, port: int, title: str, book: dict[str, list[tuple[Finding, int | None]]]) -> list[str]:
    lines = [f"{title}: {sum(len(v) for v in book.values())} ({len(book)} distinct)"]
    for signature, hits in sorted(book.items(), key=lambda kv: -len(kv[1])):
        indexes = sorted({i for _, i in hits if i is not None})
        lines.append(f"  {len(hits)}x {signature}  [{len(indexes)} messages, the first: {indexes[:12]}"
                     f"{' …' if len(indexes) > 12 else ''}]")
        lines.append(f"      e.g. {hits[0][0].text[:300]}")
        lines += _example(args, port, hits[0][1])
    return lines


def summary(args: argparse.Namespace, target: Target, stats: Stats, elapsed: float) -> list[str]:
    probes = stats.probes
    lines = [
        (f"switchd fuzz: seed {args.seed}, {stats.messages} messages, {args.connections} "
        f"{'UDP sockets' if args.udp else 'connections'}, "
        f"node 127.0.0.1:{target.port} (pid {target.pid}{', spawned' if target.spawned else ''})"),
        (f"sent: {stats.messages} messages, {stats.sent_bytes / 1e6:.1f} MB, {stats.split} split across writes; "
        f"{stats.follow_ups} ACK/BYE to answered calls, {stats.answered_requests} answers to the node's requests"),
        "responses by status: " + (" ".join(f"{code}:{n}" for code, n in sorted(stats.responses.items())) or "none"),
        (f"INVITEs: {len(stats.invites_final)} answered finally; "
         f"{len(stats.invites_provisional - stats.invites_final)} answered 1xx and never a final answer "
         "(our own closes after a desynchronising message cause some)"),
        "requests from the node: " + (" ".join(f"{m}:{n}" for m, n in sorted(stats.requests.items())) or "none"),
        (f"connections: {stats.opened} opened, {stats.closed_by_node} closed by the node, {stats.closed_by_us} closed by "
        f"us after a desynchronising message, {stats.refused} refused, {stats.send_stalls} writes stalled > "
        f"{SEND_TIMEOUT:g}s, {stats.unframed} unframeable answers"),
        (f"clean OPTIONS: {len(probes)} answered 200, latency max {max(probes, default=math.nan) * 1000:.1f} ms, "
        f"{sum(f.count('clean OPTIONS') for f in stats.failures)} failed"),
        *_book(args, target.port, "crashes outside a call session (0 expected)", stats.faults),
        *_book(args, target.port, "call session crashes and call faults (allowed: they stay in the call at fault)", stats.session_crashes),
        f"node deaths (restarted with --keep-going): {stats.node_deaths}",
        (f"CDRs after the stop: {'not read' if stats.cdrs is None else stats.cdrs or 'none'}; "
         f"daemon exit status {stats.exit_status}"),
        "mutations: " + " ".join(f"{k}:{v}" for k, v in sorted(stats.mutations.counts.items())),
        f"elapsed: {elapsed:.1f} s; seed {args.seed}",
    ]
    verdict = "PASS" if not stats.failures else f"FAIL ({len(stats.failures)} failed checks)"
    lines.append(f"result: {verdict}")
    lines += [f"  {failure}" for failure in stats.failures[:20]]
    return lines


def _as_json(args: argparse.Namespace, target: Target, stats: Stats, elapsed: float) -> dict[str, object]:
    def book(b: dict[str, list[tuple[Finding, int | None]]]) -> dict[str, object]:
        return {sig: {"count": len(hits), "messages": sorted({i for _, i in hits if i is not None})}
                for sig, hits in b.items()}
    return {
        "seed": args.seed, "messages": stats.messages, "responses": {str(k): v for k, v in stats.responses.items()},
        "closed_by_node": stats.closed_by_node, "invites_final": len(stats.invites_final),
        "invites_without_final": len(stats.invites_provisional - stats.invites_final), "probes": len(stats.probes),
        "probe_latency_max": max(stats.probes, default=None), "faults": book(stats.faults),
        "session_crashes": book(stats.session_crashes), "node_deaths": stats.node_deaths,
        "failures": stats.failures, "cdrs": stats.cdrs, "exit_status": stats.exit_status, "elapsed": elapsed,
        "pid": target.pid, "passed": not stats.failures,
    }


# --- command line ------------------------------------------------------------------------------------------


def _indexes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--messages", type=int, default=2000, help="how many messages (default 2000)")
    parser.add_argument("--only", type=_indexes, default=None, metavar="I[,J…]",
                        help="send only these message indexes of the seed (replay a finding)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--spawn", action="store_true", help="start a node of our own (and stop it at the end)")
    where.add_argument("--target", metavar="HOST:PORT", help="a running node (127.0.0.1 only)")
    parser.add_argument("--log", type=Path, help="with --target: the node's log (JSON lines) to check")
    parser.add_argument("--pid", type=int, help="with --target: the node's PID, which must stay alive")
    parser.add_argument("--connections", type=int, default=4, help="TCP connections used at once (default 4)")
    parser.add_argument("--udp", action="store_true",
                        help="send over UDP: one datagram per message, to the node's sip.listen_udp (with --spawn)"
                             " or to --target")
    parser.add_argument("--chunk", type=int, default=200, help="messages between two checks (default 200)")
    parser.add_argument("--rate", type=float, default=None,
                        help="messages per second, 0: as fast as possible (default 400; 200 with --udp, which has "
                             "no backpressure: a faster sender only queues datagrams the probe then waits behind)")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds to wait after the last message")
    parser.add_argument("--keep-going", action="store_true",
                        help="go on after a failed check (restart a dead spawned node): count every fault")
    parser.add_argument("--save-dir", type=Path, help="write each finding's triggering message here")
    parser.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the spawned node's temp dir")
    parser.add_argument("--workdir", type=Path, help="with --spawn: the node's files go here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.rate is None:
        args.rate = 200.0 if args.udp else 400.0
    if args.target is not None:
        host, _, port = args.target.rpartition(":")
        if host not in {"127.0.0.1", "localhost"} or not port.isdigit():
            parser.error("--target must be 127.0.0.1:PORT: the fuzzer only attacks this machine's loopback")
        args.target_port = int(port)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stats = Stats()
    spawned: SpawnedNode | None = None
    if args.spawn:
        spawned = SpawnedNode(args.workdir or Path(tempfile.mkdtemp(prefix="switchd-fuzz-")), udp=args.udp)
        spawned.start()
        port = spawned.udp_port if spawned.udp_port is not None else spawned.port
        target = Target(port, spawned.daemon.pid, LogWatch(spawned.log_path), spawned)
    else:
        target = Target(args.target_port, args.pid, LogWatch(args.log) if args.log else None)
    fuzzer: Fuzzer[Any] = (UdpFuzzer if args.udp else TcpFuzzer)(args, target.port, stats)
    started = time.monotonic()
    try:
        trio.run(fuzz, fuzzer, target)
    finally:
        if spawned is not None:
            stats.exit_status = spawned.stop()
            if stats.exit_status != 0:
                stats.failures.append(f"the node's exit status after SIGTERM was {stats.exit_status}, not 0")
            assert target.log is not None
            if fuzzer.record(target.log.poll(final=True)):
                stats.failures.append("crash or traceback in the node's log during its stop")
            stats.cdrs = spawned.cdr_counts()
    elapsed = time.monotonic() - started
    print("\n".join(summary(args, target, stats, elapsed)))
    if args.summary_json is not None:
        args.summary_json.write_text(json.dumps(_as_json(args, target, stats, elapsed), indent=1), encoding="utf-8")
    if spawned is not None:
        if stats.failures or args.keep or args.workdir:
            print(f"node files kept in {spawned.workdir} (switchd.log, node/)")
        else:
            spawned.remove()
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
