"""new_branch, new_tag, new_call_id: fresh, well-formed identifiers (RFC 3261 §8.1.1, §19.3)."""

from __future__ import annotations

import os
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


def test_identifiers_stay_distinct_across_many_refills_of_the_random_pool() -> None:
    drawn = [new_tag() for _ in range(5_000)] + [new_branch()[7:] for _ in range(5_000)]  # ~20 refills
    assert len(set(drawn)) == len(drawn)


def test_a_forked_child_does_not_hand_out_its_parents_identifiers() -> None:
    new_tag()  # the parent has read ahead: the pool holds bytes a child must not reuse
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write_end, "".join(new_tag() for _ in range(4)).encode())
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(child, 0)
    childs = os.read(read_end, 4096).decode()
    os.close(read_end)
    parents = "".join(new_tag() for _ in range(4))
    assert status == 0 and len(childs) == len(parents) == 64
    assert childs != parents
