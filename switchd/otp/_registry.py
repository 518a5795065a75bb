"""The registry: unique names (register/whereis/unregister) and duplicate keys (join/members/dispatch).

Both tables live in the node, so each trio run has its own. A process's name and its keys are
released when it exits, before its monitors fire: whoever receives the ``Down`` may register the
name again at once. Names resolve at the moment of use: a supervisor's restarted child that
registers the same name is found again by every later ``call(name, ...)``.
"""

from __future__ import annotations

from ._errors import AlreadyRegistered, NoProcess
from ._pid import Pid
from ._process import node


def register(name: str, pid: Pid) -> None:
    """Give `pid` the unique `name`.

    Raises AlreadyRegistered when a live process holds `name` or `pid` already has a name, and
    NoProcess when `pid` is not alive.
    """
    n = node()
    proc = pid._proc
    if not proc.alive:
        raise NoProcess(f"cannot register {name!r}: {pid} is not alive")
    holder = n.names.get(name)
    if holder is not None:
        raise AlreadyRegistered(f"name {name!r} is already registered to {holder.pid}")
    if proc.name is not None:
        raise AlreadyRegistered(f"{pid} is already registered as {proc.name!r}")
    n.names[name] = proc
    proc.name = name


def unregister(name: str) -> None:
    """Release `name`; raises NoProcess when it is not registered."""
    n = node()
    proc = n.names.pop(name, None)
    if proc is None:
        raise NoProcess(f"cannot unregister {name!r}: no process is registered under it")
    proc.name = None


def whereis(name: str) -> Pid | None:
    """The pid registered as `name`, or None."""
    proc = node().names.get(name)
    return proc.pid if proc is not None else None


def join(key: str, pid: Pid | None = None) -> None:
    """Add `pid` (default: the current process) to the members of `key`; joining twice is a no-op."""
    n = node()
    proc = n.current() if pid is None else pid._proc
    if not proc.alive:
        raise NoProcess(f"cannot join {key!r}: {proc.pid} is not alive")
    n.groups.setdefault(key, {})[proc] = None
    if proc.groups is None:
        proc.groups = set()
    proc.groups.add(key)


def leave(key: str, pid: Pid | None = None) -> None:
    """Remove `pid` (default: the current process) from `key`; a non-member is ignored."""
    n = node()
    proc = n.current() if pid is None else pid._proc
    members = n.groups.get(key)
    if members is not None:
        members.pop(proc, None)
        if not members:
            del n.groups[key]
    if proc.groups is not None:
        proc.groups.discard(key)


def members(key: str) -> list[Pid]:
    """The live members of `key`, in join order."""
    return [proc.pid for proc in node().groups.get(key, {})]


def dispatch(key: str, msg: object) -> int:
    """Send `msg` to every member of `key` (never blocks); returns how many got it."""
    group = node().groups.get(key)
    if not group:
        return 0
    for proc in list(group):
        proc.deliver(msg)
    return len(group)
