"""Run `python -m switchd ARGS` with CPython's garbage collector timed (bench/held_calls.py --gc-probe).

    python bench/_gc_probe.py STATS_FILE run --config ...

A `gc.callbacks` hook adds up the time of each collection by generation; a daemon thread rewrites
STATS_FILE (one JSON object) every second with the collections, their seconds and the objects
they examined so far, and the process's tracked-object count. The bench reads it between its own
samples: how much of the node's CPU the collector takes as calls pile up.

With SWITCHD_TRACEMALLOC=N in the environment, tracemalloc traces N frames, and whenever a file
STATS_FILE.snap-NAME appears the thread writes a snapshot to STATS_FILE.NAME (tracemalloc's dump
format) and removes the request: what the live objects are, compared between two moments. A file
STATS_FILE.reset zeroes the collector figures (the bench's idle moment) and is removed.
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

_started = [0.0]
_seconds = [0.0, 0.0, 0.0]
_count = [0, 0, 0]
_collected = [0, 0, 0]
_longest = [0.0, 0.0, 0.0]
_frozen_at_idle = [0]


def _callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.thread_time()
    else:
        gen = int(info["generation"])
        took = time.thread_time() - _started[0]
        _seconds[gen] += took
        _longest[gen] = max(_longest[gen], took)
        _count[gen] += 1
        _collected[gen] += int(info["collected"])


def _writer(path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    while True:
        time.sleep(1.0)
        reset = path.parent / f"{path.name}.reset"
        if reset.exists():  # the bench's idle moment: count from here (start-up's collections left out)
            _seconds[:], _longest[:] = [0.0] * 3, [0.0] * 3
            _count[:], _collected[:] = [0] * 3, [0] * 3
            # gc.get_freeze_count() walks the whole frozen list with the GIL held: with the node's
            # collector freezing the calls up, that is a stall of the node's loop per call, so it is
            # read once, here, while the node is idle, never while calls are up
            _frozen_at_idle[0] = gc.get_freeze_count()
            reset.unlink()
        for request in path.parent.glob(f"{path.name}.snap-*"):
            if tracemalloc.is_tracing():
                tracemalloc.take_snapshot().dump(str(path.parent / f"{path.name}.{request.name.rsplit('-', 1)[1]}"))
            request.unlink()
        stats = {"seconds": _seconds, "collections": _count, "collected": _collected, "longest": _longest,
                 "frozen_at_idle": _frozen_at_idle[0], "threshold": gc.get_threshold(), "tracked_gen_counts": gc.get_count()}
        tmp.write_text(json.dumps(stats), encoding="ascii")
        os.replace(tmp, path)


def main() -> None:
    path = Path(sys.argv[1])
    gc.callbacks.append(_callback)
    if os.environ.get("SWITCHD_TRACEMALLOC"):
        tracemalloc.start(int(os.environ["SWITCHD_TRACEMALLOC"]))
    threading.Thread(target=_writer, args=(path,), daemon=True, name="gc-probe").start()
    sys.argv = ["switchd", *sys.argv[2:]]
    runpy.run_module("switchd", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
