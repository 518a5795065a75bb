"""Files at the repository's root that commands in the README and docs rely on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_alembic_outside_the_repository_root_touches_nothing_in_the_working_directory(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"  # a copy, so the test writes nothing into the real repository
    checkout.mkdir()
    shutil.copy(REPO / "alembic.ini", checkout / "alembic.ini")
    shutil.copytree(REPO / "migrations", checkout / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "config", checkout / "config")  # alembic finds the database through it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SWITCHD_BILLING_URL"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    for command in (["upgrade", "head"], ["current"]):
        done = subprocess.run([sys.executable, "-m", "alembic", "-c", str(checkout / "alembic.ini"), *command],
                              cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
    assert list(elsewhere.iterdir()) == []
    assert (checkout / "data" / "switchd.sqlite3").is_file()  # the database next to alembic.ini, as documented


def test_the_data_directory_exists_in_a_checkout_so_the_documented_log_redirect_works() -> None:
    ignore = REPO / "data" / ".gitignore"
    assert ignore.is_file()
    assert ignore.read_text().splitlines()[-2:] == ["*", "!.gitignore"]


def test_docs_and_benches_name_no_path_that_exists_only_on_one_machine() -> None:
    machine_only = ("/work/", "/home/", "/root/", "venv/bin", "bench-kit", "farm-bench")
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "bench").iterdir()),
             REPO / "alembic.ini", *sorted((REPO / "config").iterdir())]
    for path in files:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not [m for m in machine_only if m in text], path


def test_the_readme_starts_with_the_demo_and_keeps_pytest_second_for_ci() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block == ["pip install -e '.[test]' && switchd demo", "pytest"]  # .ci/run runs line 2
