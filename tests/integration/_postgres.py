"""A PostgreSQL 15 cluster of one fault test: started, stopped, frozen and thawed by the test.

The cluster is the test's own child (initdb + pg_ctl in a temp dir owned by the `postgres` user
when we are root, on a free 127.0.0.1 port), never the machine's packaged one, and everything
done to it goes by the PIDs of its own processes: `freeze` sends SIGSTOP to its postmaster and
every child of it (a hung database server: connections stay open, nothing answers), `thaw` sends
SIGCONT to the same PIDs. `destroy` stops it (then SIGKILLs its postmaster if it lingers) and
removes the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ._sipp import free_tcp_port

PG_BIN = "/usr/lib/postgresql/15/bin"


class PgServer:
    """One throw-away cluster; see the module docstring."""

    def __init__(self, initdb: Path) -> None:
        self.bin_dir = initdb.parent
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.base = Path(tempfile.mkdtemp(prefix="switchd-fault-pg-"))
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self.port = free_tcp_port()
        self.frozen: list[int] = []
        subprocess.run([*self.as_postgres, str(initdb), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args],
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-l", str(self.base / "postgres.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        """pg_ctl stop -m fast: connections are cut, the server is gone until `start`."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def postmaster(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, walwriter ...), by /proc."""
        root = self.postmaster()
        if root is None:
            return []
        found = [root]
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[1]) == root:
                    found.append(int(entry.name))
        return found

    def freeze(self) -> None:
        """SIGSTOP every process of this cluster (connections stay open; nothing answers)."""
        self.frozen = self.processes()
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT the processes `freeze` stopped."""
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def destroy(self) -> None:
        self.thaw()
        pid = self.postmaster()
        try:
            self.stop()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if pid is not None:  # our own postmaster, by PID: never anything else
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)
