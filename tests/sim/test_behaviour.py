"""Behaviour specs from the command line and TOML files, and the longest-prefix choice."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.sim import (
    AddressError,
    Answer,
    Behaviour,
    BehaviourError,
    Behaviours,
    Busy,
    Drop,
    NeverAnswer,
    Reject,
    behaviour_spec,
    load_behaviours,
    parse_address,
    parse_behaviour,
    parse_route,
)


def test_each_spec_names_its_behaviour_with_defaults() -> None:
    assert parse_behaviour("answer") == Answer(ring=1.0)
    assert parse_behaviour("answer:ring=0.5") == Answer(ring=0.5)
    assert parse_behaviour("hangup:ring=0,hold=3") == Answer(ring=0.0, hangup_after=3.0)
    assert parse_behaviour("busy") == Busy()
    assert parse_behaviour("reject") == Reject(code=503)
    assert parse_behaviour("reject:code=503,retry_after=30") == Reject(code=503, retry_after=30)
    assert parse_behaviour("reject:code=404") == Reject(code=404)
    assert parse_behaviour("noanswer") == NeverAnswer()
    assert parse_behaviour("drop:after=0.25") == Drop(after=0.25)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ring", "unknown behaviour 'ring'"),
        ("answer:ring=soon", "ring='soon' is not a number"),
        ("answer:ring=-1", "must be a number >= 0"),
        ("reject:code=200", "code=200 is not in 300-699"),
        ("reject:code=5x3", "is not a whole number"),
        ("busy:code=486", "unknown key 'code' for busy"),
        ("answer:ring", "'ring' is not key=value"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_spec_and_the_part(spec: str, message: str) -> None:
    with pytest.raises(BehaviourError, match=message) as info:
        parse_behaviour(spec)
    assert repr(spec) in str(info.value)


@given(
    st.one_of(
        st.builds(Answer, ring=st.sampled_from([0.0, 0.25, 1.0, 30.0])),
        st.builds(Answer, ring=st.sampled_from([0.0, 2.5]), hangup_after=st.sampled_from([0.0, 0.5, 60.0])),
        st.just(Busy()),
        st.builds(Reject, code=st.integers(300, 699), retry_after=st.none() | st.integers(0, 3600)),
        st.just(NeverAnswer()),
        st.builds(Drop, after=st.sampled_from([0.0, 0.1, 5.0])),
    )
)
def test_every_behaviour_prints_as_a_spec_that_parses_back_to_it(behaviour: Behaviour) -> None:
    assert parse_behaviour(behaviour_spec(behaviour)) == behaviour


def test_a_route_rule_is_prefix_equals_spec() -> None:
    assert parse_route("1555=busy") == ("1555", Busy())
    with pytest.raises(BehaviourError, match="PREFIX=BEHAVIOUR"):
        parse_route("busy")


def test_the_longest_prefix_wins_and_the_default_takes_the_rest() -> None:
    table = Behaviours(default=Answer(ring=0.0), prefixes={"44": Busy(), "4420": NeverAnswer(), "": Reject(code=404)})
    assert table.for_number("442071234567") == NeverAnswer()
    assert table.for_number("4430") == Busy()
    assert table.for_number("1555") == Reject(code=404)  # "" matches everything
    assert Behaviours(default=Busy()).for_number("1") == Busy()


def test_a_behaviours_file_takes_spec_strings_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        'default = "answer:ring=0.5"\n[prefixes]\n"1555" = "busy"\n'
        '"44" = { behaviour = "reject", code = 503, retry_after = 30 }\n'
    )
    table = load_behaviours(path)
    assert table.default == Answer(ring=0.5)
    assert table.prefixes == {"1555": Busy(), "44": Reject(code=503, retry_after=30)}


def test_a_bad_behaviours_file_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text('[prefixes]\n"44" = "reject:code=99"\n')
    with pytest.raises(BehaviourError, match=r"sim.toml: prefixes.44: .*code=99 is not in 300-699"):
        load_behaviours(path)
    path.write_text("defualt = 'busy'\n")
    with pytest.raises(BehaviourError, match="defualt: unknown key"):
        load_behaviours(path)
    with pytest.raises(BehaviourError, match="cannot read"):
        load_behaviours(tmp_path / "missing.toml")


def test_addresses_parse_as_host_and_port() -> None:
    assert parse_address("127.0.0.1:5070") == ("127.0.0.1", 5070)
    assert parse_address("[::1]:5060") == ("::1", 5060)
    assert parse_address("localhost", default_port=5060) == ("localhost", 5060)
    for bad in ["127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":5060"]:
        with pytest.raises(AddressError, match=repr(bad)):
            parse_address(bad)
