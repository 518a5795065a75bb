"""The seeded mutation fuzzer (bench/fuzz.py) against a live `python -m switchd run`.

2,000 mutated INVITE/OPTIONS/BYE/REGISTER messages (seed 13; a second seed from the environment
variable SWITCHD_FUZZ_SEED when set) through four TCP connections into a node the fuzzer spawns
itself. The node must stay up: after every 200 messages and at the end a clean OPTIONS on a fresh
connection is answered 200 within 1 s, the daemon keeps its PID, and its log shows no crash of any
process that is not a call session, no supervisor that gave up and no traceback outside the call
at fault; after SIGTERM it exits 0. The fuzzer's own summary says what failed and names the message
that triggered each fault (replay it with `python bench/fuzz.py --seed S --only INDEX --spawn`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.integration

FUZZ = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"
CI_SEED = 13
MESSAGES = 2000

# Every class of input the issue names; the CI run must send each of them (mutation labels start so).
ISSUE_CLASSES = ("bit-flip", "byte-insert", "byte-delete", "dup-header", "crlf-inject", "ctl", "content-length-too-long",
                 "content-length-too-short", "content-length-negative", "content-length-huge",
                 "content-length-duplicated", "truncate", "non-utf8-call-id", "non-utf8-from-tag", "non-utf8-to-tag",
                 "non-utf8-uri-user", "non-utf8-display-name", "scheme", "require", "long-line", "many-headers",
                 "many-vias", "split")

SEEDS = [CI_SEED, *([int(os.environ["SWITCHD_FUZZ_SEED"])] if os.environ.get("SWITCHD_FUZZ_SEED") else [])]


def run_fuzz(seed: int, tmp_path: Path, *options: str) -> tuple[dict[str, Any], subprocess.CompletedProcess[str], str]:
    """bench/fuzz.py against a node it spawns under `tmp_path`; its JSON summary, the run, and a report."""
    summary_path = tmp_path / "summary.json"
    run = subprocess.run(
        [sys.executable, str(FUZZ), "--seed", str(seed), "--messages", str(MESSAGES), "--spawn",
         "--summary-json", str(summary_path), "--save-dir", str(tmp_path / "findings"),
         "--workdir", str(tmp_path / "node"), *options],
        capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(FUZZ.parents[1]),
                                                                        os.environ.get("PYTHONPATH")]))},
    )
    report = f"--- fuzz summary (exit {run.returncode}) ---\n{run.stdout[-12000:]}\n{run.stderr[-4000:]}"
    assert summary_path.exists(), report
    return json.loads(summary_path.read_text(encoding="utf-8")), run, report


@pytest.mark.parametrize("seed", SEEDS)
def test_2000_fuzzed_messages_leave_the_node_up_answering_and_without_a_crash_outside_the_call_at_fault(
    seed: int, tmp_path: Path,
) -> None:
    summary, run, report = run_fuzz(seed, tmp_path)
    assert summary["faults"] == {}, report  # no crash, gave-up or traceback outside a call session
    assert summary["messages"] == MESSAGES, report  # every message went out: the node never refused us
    assert summary["probes"] >= MESSAGES // 200 + 1, report  # every checkpoint's clean OPTIONS got its 200
    assert summary["probe_latency_max"] < 1.0, report
    assert summary["node_deaths"] == 0 and summary["exit_status"] == 0, report
    assert summary["failures"] == [] and run.returncode == 0, report


def _corpus() -> ModuleType:
    """bench/_fuzz_corpus.py (bench/ is scripts, not a package)."""
    name = "bench_fuzz_corpus"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FUZZ.parent / "_fuzz_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def test_the_fuzzers_messages_are_a_function_of_seed_and_index_and_the_ci_run_sends_every_class_the_issue_names(
) -> None:
    corpus = _corpus()
    first = [corpus.build(CI_SEED, i, port=5060, connections=4) for i in range(MESSAGES)]
    again = [corpus.build(CI_SEED, i, port=5060, connections=4) for i in reversed(range(MESSAGES))][::-1]
    assert first == again  # no hidden state: message i is the same whatever was built before it
    other = [corpus.build(CI_SEED + 1, i, port=5060, connections=4) for i in range(50)]
    assert [m.data for m in other] != [m.data for m in first[:50]]
    labels = {label for message in first for label in message.mutations}
    missing = [name for name in ISSUE_CLASSES if not any(label.startswith(name) for label in labels)]
    assert missing == []
    schemes = {m.data.split(b" ", 2)[1].split(b":")[0] for m in first if m.mutations == ("scheme",)}
    assert {b"http", b"urn", b"mailto", b"tel"} <= schemes
    assert {m.seed_kind for m in first} == {"invite-sipp", "invite-softphone", "options", "bye", "register"}
    assert sum(not m.mutations for m in first) > MESSAGES // 10  # clean calls keep real traffic going
