"""Two real softphones through switchd: issue 14's "Done when", as a person would do it.

    baresip alice --TCP--> switchd (registrar, digest, B2BUA) --UDP--> baresip bob

Two accounts are added with `switchd accounts add`; alice registers over TCP and bob over UDP,
both with digest; alice calls `sip:bob@<domain>`, bob answers by himself (answer mode auto);
alice puts bob on hold and back, then bob does the same to alice (re-INVITEs a=sendonly /
a=recvonly / a=sendrecv, both ways across the B2BUA); alice hangs up. The phones are driven
through their ctrl_tcp module (`_baresip.py`); what they saw is read from their events and their
SIP trace; the CDR is read after switchd stopped: alice's account, ANSWERED, closed with the
talk time, the four re-INVITEs counted.

The first test runs the same call between the two phones directly, without switchd: it proves
the harness and the phones, so that a failure of the second is switchd's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from switchd.billing import CdrStatus, Disposition, HangupParty
from tests.conftest import require_binary
from tests.integration._baresip import Baresip, SipTrace
from tests.integration._phones import (
    DOMAIN,
    add_account,
    assert_no_secret,
    cdr_account,
    phone_config,
    reinvites,
    start_phone_switchd,
)
from tests.integration.conftest import StartSwitchd

pytestmark = pytest.mark.integration

ALICE_PASSWORD = "alice-Secret-8217"
BOB_PASSWORD = "bob-Secret-5530"
_DIRECTION = re.compile(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", re.MULTILINE)


@contextmanager
def phones(binary: Path, workdir: Path, *, alice: str, bob: str, regint: int) -> Iterator[tuple[Baresip, Baresip]]:
    """alice (AOR `alice`, TCP, answers by hand) and bob (AOR `bob`, UDP, answers at once), each
    with its password; both stopped at the end, their output added to any failure."""
    started: list[Baresip] = []
    try:
        started.append(Baresip(binary, workdir, name="alice", aor=alice, password=ALICE_PASSWORD, regint=regint))
        started.append(Baresip(binary, workdir, name="bob", aor=bob, password=BOB_PASSWORD, regint=regint,
                               answer="auto"))
        yield started[0], started[1]
    except AssertionError as exc:
        for phone in started:
            phone.stop()
        outputs = "".join(f"\n--- baresip {p.name} ---\n{p.output()}" for p in started)
        raise AssertionError(f"{exc}{outputs}") from None
    finally:
        for phone in started:
            phone.stop()


def call_hold_resume_hangup(alice: Baresip, bob: Baresip, uri: str) -> float:
    """alice calls `uri` (bob answers), holds and resumes him, he holds and resumes her, she hangs
    up; every step waits for its events on both phones. The seconds the call was up at alice."""
    a, b = alice.mark(), bob.mark()
    alice.command("dial", uri)
    alice.wait_event("CALL_ESTABLISHED", after=a)
    established = time.monotonic()
    bob.wait_event("CALL_ESTABLISHED", after=b)
    for holder, held in ((alice, bob), (bob, alice)):
        for command in ("hold", "resume"):
            h, d = holder.mark(), held.mark()
            holder.command(command)
            # the re-INVITE's offer reached the other phone, and its answer came back
            held.wait_event("CALL_REMOTE_SDP", param="offer", after=d)
            holder.wait_event("CALL_REMOTE_SDP", param="answer", after=h)
    a, b = alice.mark(), bob.mark()
    alice.command("hangup")
    alice.wait_event("CALL_CLOSED", after=a, fail_on=())
    talked = time.monotonic() - established
    bob.wait_event("CALL_CLOSED", after=b, fail_on=())
    return talked


def _directions(messages: list[SipTrace], start: str) -> list[str]:
    """The SDP direction of each distinct received message whose start line begins with `start`
    and whose CSeq is an INVITE (a UDP retransmission is one message), in order."""
    seen: dict[tuple[str, str], str] = {}
    for message in messages:
        if message.start_line.startswith(start) and message.cseq.endswith("INVITE") and "\nv=0" in message.text:
            found = _DIRECTION.search(message.text)
            seen.setdefault((message.start_line, message.cseq), found.group(1) if found else "sendrecv")
    return list(seen.values())


def assert_held_both_ways(alice: Baresip, bob: Baresip, *, alice_peer: str, bob_peer: str) -> None:
    """What each phone received, from its SIP trace: the other's offers (initial, hold, resume)
    and the answers to its own, with the directions RFC 3264 §8.4 gives them."""
    alice_got, bob_got = alice.received(alice_peer), bob.received(bob_peer)
    assert _directions(bob_got, "INVITE") == ["sendrecv", "sendonly", "sendrecv"], bob.describe()
    assert _directions(alice_got, "SIP/2.0 200") == ["sendrecv", "recvonly", "sendrecv"], alice.describe()
    assert _directions(alice_got, "INVITE") == ["sendonly", "sendrecv"], alice.describe()
    assert _directions(bob_got, "SIP/2.0 200") == ["recvonly", "sendrecv"], bob.describe()


def test_two_baresip_phones_call_each_other_directly_and_hold_both_ways(tmp_path: Path) -> None:
    binary = require_binary("baresip")
    with phones(binary, tmp_path, alice=f"sip:alice@{DOMAIN};transport=tcp",
                bob=f"sip:bob@{DOMAIN};transport=udp", regint=0) as (alice, bob):
        call_hold_resume_hangup(alice, bob, f"sip:bob@{bob.address}")
    assert_held_both_ways(alice, bob, alice_peer=bob.address, bob_peer=alice.address)


def test_two_baresip_phones_register_call_hold_resume_and_the_call_is_billed_to_the_caller(
    start_switchd: StartSwitchd, tmp_path: Path
) -> None:
    binary = require_binary("baresip")
    cfg = phone_config(tmp_path / "switchd", domain=True, udp=True)
    add_account(cfg, "alice", ALICE_PASSWORD)
    add_account(cfg, "bob", BOB_PASSWORD)
    switchd = start_phone_switchd(start_switchd, cfg)
    server = f"{DOMAIN}:{cfg.sip_port}"
    try:
        with phones(binary, tmp_path, alice=f"sip:alice@{server};transport=tcp",
                    bob=f"sip:bob@{server};transport=udp", regint=600) as (alice, bob):
            for phone in (alice, bob):
                phone.wait_registered()
            talked = call_hold_resume_hangup(alice, bob, f"sip:bob@{server}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- switchd log ---\n{switchd.log()}") from None
    assert_held_both_ways(alice, bob, alice_peer=server, bob_peer=server)
    assert switchd.stop() == 0, switchd.log()
    [cdr] = switchd.cdrs()
    assert (cdr.account, cdr.status, cdr.disposition, cdr.sip_code, cdr.hangup_by) == (
        cdr_account("alice"), CdrStatus.CLOSED, Disposition.ANSWERED, 200, HangupParty.CALLER)
    assert cdr.callee_raw == "bob"
    assert cdr.answer_at is not None and cdr.end_at is not None
    # billed for the time the call was up, as alice saw it (its events lag by a few ms)
    assert cdr.billable_ms is not None and abs(cdr.billable_ms / 1000 - talked) < 1.0, (cdr.billable_ms, talked)
    assert cdr.rate_plan == cfg.config.billing.default_rate_plan
    assert reinvites(cdr) == 4, f"re-INVITEs counted in the CDR: {reinvites(cdr)}"
    assert_no_secret(switchd, ALICE_PASSWORD, BOB_PASSWORD)
