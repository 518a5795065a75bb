"""switchd.demo: `switchd demo`, the whole system in one command and under a minute.

One trio run holds a switchd node (temporary directory, embedded SQLite), two simulated carriers
and a population of simulated phones; the scenario places calls with every ending, kills a call
process and the router on purpose, hot-swaps the routing policy, stops the node and proves that
every call placed left exactly one closed CDR. See `_scenario` for the script, `_view` for what
is shown, and the README for the command.
"""

from ._scenario import (
    CdrLine,
    DemoPlan,
    DemoProgress,
    DemoReport,
    Kind,
    outcome_label,
    run_demo,
    write_workdir,
)
from ._view import frame, play, print_report, supervision_tree

__all__ = [  # sorted; tests/test_exports.py checks it
    "CdrLine", "DemoPlan", "DemoProgress", "DemoReport", "Kind", "frame", "outcome_label", "play",
    "print_report", "run_demo", "supervision_tree", "write_workdir",
]
