"""`switchd accounts`: the password goes in by prompt or stdin and is never shown; the database holds its digests."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from switchd.billing import AccountInfo, get_account, open_engine
from switchd.cli import main
from switchd.sip import DigestAlgorithm, ha1

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'switchd.sqlite3'}"


def run(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(["accounts", *argv])


def find(url: str, user: str, realm: str = "switchd") -> AccountInfo | None:
    engine = open_engine(url)
    try:
        with Session(engine) as session:
            return get_account(session, user, realm)
    finally:
        engine.dispose()


def account(url: str, user: str, realm: str = "switchd") -> AccountInfo:
    found = find(url, user, realm)
    assert found is not None, f"no account {user}@{realm}"
    return found


def one_red_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("switchd: "), err
    return lines[0]


def test_add_reads_the_password_from_stdin_and_stores_only_its_digests(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: str) -> None:
    assert run(monkeypatch, "add", "alice", "--db", db, "--caller-id", "+14155550100", "--rate-plan", "gold",
               stdin="open sesame\n") == 0
    out = capsys.readouterr()
    assert out.out.strip() == "account alice@switchd added"
    alice = account(db, "alice")
    assert alice.ha1_md5 == ha1(DigestAlgorithm.MD5, "alice", "switchd", "open sesame")
    assert alice.ha1_sha256 == ha1(DigestAlgorithm.SHA256, "alice", "switchd", "open sesame")
    assert (alice.caller_id, alice.rate_plan, alice.enabled) == ("+14155550100", "gold", True)
    database = Path(db.removeprefix("sqlite:///")).read_bytes()
    assert b"open sesame" not in database and "open sesame" not in out.out + out.err


def test_on_a_terminal_the_password_is_asked_twice_without_echo(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: str) -> None:
    answers = iter(["pw-1", "pw-1", "pw-2", "typo"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    monkeypatch.setattr(sys, "stdin", Tty())
    assert main(["accounts", "add", "bob", "--db", db]) == 0
    assert prompts == ["password for bob: ", "again: "]
    assert main(["accounts", "passwd", "bob", "--db", db]) == 2
    assert "differ" in one_red_line(capsys.readouterr().err)
    bob = account(db, "bob")
    assert bob.ha1_md5 == ha1(DigestAlgorithm.MD5, "bob", "switchd", "pw-1")


def test_password_stdin_reads_stdin_even_on_a_terminal_and_never_prompts(
        monkeypatch: pytest.MonkeyPatch, db: str) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    def no_prompt(prompt: str = "") -> str:
        raise AssertionError(f"prompted: {prompt!r}")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    monkeypatch.setattr(sys, "stdin", Tty("from-a-script\n"))
    assert main(["accounts", "add", "iris", "--db", db, "--password-stdin"]) == 0
    monkeypatch.setattr(sys, "stdin", Tty("changed\n"))
    assert main(["accounts", "passwd", "iris", "--db", db, "--password-stdin"]) == 0
    assert account(db, "iris").ha1_md5 == ha1(DigestAlgorithm.MD5, "iris", "switchd", "changed")


def test_passwd_set_list_and_del(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: str) -> None:
    run(monkeypatch, "add", "carol", "--db", db, stdin="one\n")
    run(monkeypatch, "add", "dave", "--db", db, "--disabled", stdin="two\n")
    assert run(monkeypatch, "passwd", "carol", "--db", db, stdin="three\n") == 0
    assert account(db, "carol").ha1_sha256 == ha1(DigestAlgorithm.SHA256, "carol", "switchd", "three")
    assert run(monkeypatch, "set", "dave", "--enable", "--caller-id", "100", "--db", db) == 0
    capsys.readouterr()
    assert run(monkeypatch, "list", "--db", db, "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == [
        "username,realm,enabled,caller_id,rate_plan", "carol,switchd,True,,", "dave,switchd,True,100,"]
    assert run(monkeypatch, "list", "--db", db) == 0
    table = capsys.readouterr().out
    assert "carol" in table and "2 accounts" in table
    assert run(monkeypatch, "del", "carol", "--db", db) == 0
    assert find(db, "carol") is None


def test_list_shows_no_secret(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: str) -> None:
    run(monkeypatch, "add", "erin", "--db", db, stdin="secret\n")
    digests = [ha1(a, "erin", "switchd", "secret") for a in DigestAlgorithm]
    for fmt in ("table", "csv", "json"):
        capsys.readouterr()
        run(monkeypatch, "list", "--db", db, "--format", fmt)
        out = capsys.readouterr().out
        assert not any(d in out for d in digests) and "secret" not in out


def test_the_realm_comes_from_the_configuration_unless_given(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db: str) -> None:
    config = tmp_path / "switchd.toml"
    config.write_text(f'[database]\nurl = "{db}"\n[auth]\nrealm = "pbx.example.net"\n')
    assert run(monkeypatch, "add", "frank", "--config", str(config), stdin="pw\n") == 0
    assert run(monkeypatch, "add", "frank", "--db", db, "--realm", "other", stdin="pw\n") == 0
    assert find(db, "frank", "pbx.example.net") is not None and find(db, "frank", "other") is not None


@pytest.mark.parametrize(("argv", "stdin", "code", "says"), [
    (["add", "gina"], "pw\n", 1, "exists already"),
    (["del", "nobody"], "", 1, "no account nobody@switchd"),
    (["add", "bad user"], "pw\n", 2, "username 'bad user'"),
    (["add", "hank"], "\n", 2, "non-empty"),
    (["set", "gina"], "", 2, "nothing to change"),
])
def test_mistakes_are_one_red_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], db: str,
                                   argv: list[str], stdin: str, code: int, says: str) -> None:
    run(monkeypatch, "add", "gina", "--db", db, stdin="pw\n")
    capsys.readouterr()
    assert run(monkeypatch, *argv, "--db", db, stdin=stdin) == code
    assert says in one_red_line(capsys.readouterr().err)


def test_a_missing_database_is_not_created_except_by_add(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    assert run(monkeypatch, "list", "--db", url) == 1
    assert "no database at" in one_red_line(capsys.readouterr().err)
    assert not (tmp_path / "none.sqlite3").exists()


def test_the_password_never_reaches_the_log_even_at_debug(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    done = subprocess.run([sys.executable, "-m", "switchd", "accounts", "add", "ivan", "--db", url, "-vv"],
                          input="hunter2-very-secret\n", capture_output=True, text=True, cwd=REPO, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    digest = ha1(DigestAlgorithm.MD5, "ivan", "switchd", "hunter2-very-secret")
    assert digest not in done.stdout + done.stderr
