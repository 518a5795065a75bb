"""REGISTER on a user's bindings (RFC 3261 §10.3): expiry, removal, q order, Call-ID/CSeq order, limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.sip import Request, parse_message
from switchd.switch import Acl
from switchd.switch._bindings import (
    Binding,
    RegisterLimits,
    RegisterRefusal,
    RegisterRequest,
    apply_register,
    contact_headers,
    q_text,
    read_register,
)

LIMITS = RegisterLimits(min_expires=60, max_expires=3600, default_expires=1800, max_contacts=3)


def register(*contacts: str, expires: str | None = None, call_id: str = "reg-1", cseq: int = 1,
             to: str = "<sip:alice@switch.example>") -> Request:
    head = (
        "REGISTER sip:switch.example SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.7:5062;branch=z9hG4bK-r\r\n"
        "Max-Forwards: 70\r\n"
        f"From: {to};tag=f1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        + "".join(f"Contact: {c}\r\n" for c in contacts)
        + (f"Expires: {expires}\r\n" if expires is not None else "")
        + "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(head.encode())
    assert isinstance(message, Request)
    return message


def read(message: Request, acl: Acl | None = None) -> RegisterRequest:
    checked = read_register(message, "192.0.2.7", acl or Acl())
    assert isinstance(checked, RegisterRequest), checked
    return checked


def apply(current: tuple[Binding, ...], message: Request, now: float = 100.0) -> tuple[Binding, ...]:
    result = apply_register(current, read(message), now=now, limits=LIMITS)
    assert not isinstance(result, RegisterRefusal), result
    return result


def refusal(current: tuple[Binding, ...], message: Request, now: float = 100.0) -> RegisterRefusal:
    result = apply_register(current, read(message), now=now, limits=LIMITS)
    assert isinstance(result, RegisterRefusal), result
    return result


def test_a_contact_is_bound_for_the_default_time_and_the_200_lists_it() -> None:
    bindings = apply((), register("<sip:alice@192.0.2.7:5062;transport=tcp>"))
    assert [(b.contact, b.expires_at, b.transport, b.source, b.q) for b in bindings] == [
        ("sip:alice@192.0.2.7:5062;transport=tcp", 1900.0, "tcp", "192.0.2.7", 1000)]
    assert contact_headers(bindings, 150.0) == [("Contact", "<sip:alice@192.0.2.7:5062;transport=tcp>;expires=1750")]


def test_the_contact_expires_param_wins_over_the_header_and_long_asks_are_cut_to_the_maximum() -> None:
    bindings = apply((), register("<sip:a@192.0.2.7>;expires=120", "<sip:b@192.0.2.8>", expires="86400"))
    assert {b.contact: b.expires_at - 100.0 for b in bindings} == {"sip:a@192.0.2.7": 120, "sip:b@192.0.2.8": 3600}


@pytest.mark.parametrize("asked", ["<sip:a@192.0.2.7>;expires=59", "<sip:a@192.0.2.7>;expires=1"])
def test_too_short_an_interval_is_423_with_min_expires_and_changes_nothing(asked: str) -> None:
    refused = refusal((), register(asked))
    assert (refused.status, refused.headers) == (423, (("Min-Expires", "60"),))


def test_expires_zero_removes_one_contact_and_a_star_removes_them_all() -> None:
    two = apply((), register("<sip:a@192.0.2.7>", "<sip:b@192.0.2.8>"))
    one = apply(two, register("<sip:a@192.0.2.7>;expires=0", cseq=2))
    assert [b.contact for b in one] == ["sip:b@192.0.2.8"]
    assert apply(two, register("*", expires="0", cseq=3)) == ()


def test_a_star_needs_expires_zero() -> None:
    for message in (register("*"), register("*", expires="60")):
        refused = read_register(message, "192.0.2.7", Acl())
        assert isinstance(refused, RegisterRefusal) and refused.status == 400


def test_contacts_are_ordered_by_q_then_most_recent() -> None:
    first = apply((), register("<sip:low@192.0.2.7>;q=0.1", "<sip:high@192.0.2.8>;q=0.9"), now=100.0)
    both = apply(first, register("<sip:plain@192.0.2.9>", call_id="other-phone"), now=200.0)
    assert [(b.contact, b.q) for b in both] == [("sip:plain@192.0.2.9", 1000), ("sip:high@192.0.2.8", 900),
                                                 ("sip:low@192.0.2.7", 100)]
    assert contact_headers(both, 200.0)[1] == ("Contact", "<sip:high@192.0.2.8>;expires=1700;q=0.9")


def test_a_refresh_replaces_its_binding_and_the_same_contact_is_one_binding_whatever_the_host_case() -> None:
    first = apply((), register("<sip:a@Phone.Example:5062>"), now=100.0)
    again = apply(first, register("<sip:a@phone.example:5062>", cseq=2), now=500.0)
    assert len(again) == 1 and again[0].expires_at == 2300.0 and again[0].cseq == 2


def test_a_request_out_of_order_changes_nothing() -> None:
    bound = apply((), register("<sip:a@192.0.2.7>", cseq=5))
    assert refusal(bound, register("<sip:a@192.0.2.7>;expires=0", cseq=5)).status == 500
    assert refusal(bound, register("*", expires="0", cseq=4)).status == 500
    # another Call-ID (the phone restarted) may do anything
    assert apply(bound, register("*", expires="0", call_id="new", cseq=1)) == ()


def test_more_contacts_than_the_limit_are_refused_with_403() -> None:
    full = apply((), register("<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>", "<sip:c@192.0.2.3>"))
    refused = refusal(full, register("<sip:d@192.0.2.4>", cseq=2))
    assert refused.status == 403
    assert len(apply(full, register("<sip:a@192.0.2.1>", cseq=3))) == 3  # a refresh is not one more


def test_expired_bindings_are_gone_and_a_query_lists_what_is_left() -> None:
    bound = apply((), register("<sip:a@192.0.2.7>;expires=60", "<sip:b@192.0.2.8>"), now=0.0)
    later = apply(bound, register(cseq=2), now=61.0)  # no Contact: a query
    assert [b.contact for b in later] == ["sip:b@192.0.2.8"]
    assert contact_headers(bound, 61.0) == [("Contact", "<sip:b@192.0.2.8>;expires=1739")]


@pytest.mark.parametrize(("contact", "status"), [
    ("<tel:+14155550100>", 400),
    ("<sip:a@192.0.2.7>;q=1.5", 400),
    ("<sip:a@192.0.2.7>;expires=soon", 400),
    ("<sip:a@10.1.2.3>", 403),
    ("<sip:" + "a" * 1100 + "@192.0.2.7>", 400),
])
def test_contacts_that_cannot_be_bound_are_refused(contact: str, status: int) -> None:
    refused = read_register(register(contact), "192.0.2.7", Acl.from_lists(contact_deny=["10.0.0.0/8"]))
    assert isinstance(refused, RegisterRefusal) and refused.status == status


def test_the_to_must_name_a_user_and_expires_must_be_a_number() -> None:
    for message in (register("<sip:a@192.0.2.7>", to="<sip:switch.example>"),
                    register("<sip:a@192.0.2.7>", expires="-1")):
        refused = read_register(message, "192.0.2.7", Acl())
        assert isinstance(refused, RegisterRefusal) and refused.status == 400


def test_the_transport_is_the_contacts_else_the_one_the_register_came_over() -> None:
    bindings = apply((), register("<sip:a@192.0.2.7;transport=UDP>", "<sip:b@192.0.2.8>"))
    assert {b.contact: b.transport for b in bindings} == {"sip:a@192.0.2.7;transport=UDP": "udp",
                                                          "sip:b@192.0.2.8": "tcp"}


@given(st.integers(0, 1000))
def test_q_values_are_written_as_rfc_3261_reads_them(q: int) -> None:
    text = q_text(q)
    whole, _, decimals = text.partition(".")
    assert int(whole) * 1000 + int((decimals + "000")[:3]) == q
    assert len(decimals) <= 3 and not decimals.endswith("0")
