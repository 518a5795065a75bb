"""new_branch, new_tag, new_call_id: fresh, well-formed identifiers (RFC 3261 §8.1.1, §19.3)."""

from __future__ import annotations

import re

from switchd.sip import new_branch, new_call_id, new_tag

TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def test_a_branch_starts_with_the_rfc_3261_magic_cookie() -> None:
    branch = new_branch()
    assert branch.startswith("z9hG4bK")
    assert len(branch) > len("z9hG4bK") + 8  # enough randomness after the cookie


def test_branches_and_tags_are_tokens_usable_as_header_parameters() -> None:
    assert TOKEN.fullmatch(new_branch())
    assert TOKEN.fullmatch(new_tag())


def test_branches_tags_and_call_ids_do_not_repeat() -> None:
    assert len({new_branch() for _ in range(1000)}) == 1000
    assert len({new_tag() for _ in range(1000)}) == 1000
    assert len({new_call_id() for _ in range(1000)}) == 1000


def test_a_call_id_ends_with_the_given_host() -> None:
    call_id = new_call_id("10.0.0.1")
    local, at, host = call_id.partition("@")
    assert (at, host) == ("@", "10.0.0.1")
    assert TOKEN.fullmatch(local)


def test_a_call_id_without_a_host_is_a_single_word() -> None:
    call_id = new_call_id()
    assert "@" not in call_id
    assert TOKEN.fullmatch(call_id)
