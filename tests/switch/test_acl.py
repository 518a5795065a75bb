"""The access lists: deny wins over trust, IPv4 and IPv6, and where a registered Contact may be."""

from __future__ import annotations

import pytest

from switchd.switch import Acl, Trust


def test_with_no_lists_everybody_is_unknown_and_any_contact_is_taken() -> None:
    acl = Acl()
    assert acl.classify("192.0.2.1") is Trust.UNKNOWN
    assert acl.contact_refusal("phone.example.net") is None and not acl.checks_contacts


@pytest.mark.parametrize(("source", "trust"), [
    ("192.0.2.10", Trust.TRUSTED),
    ("192.0.2.66", Trust.DENIED),  # in both: deny wins
    ("198.51.100.1", Trust.UNKNOWN),
    ("2001:db8::5", Trust.TRUSTED),
    ("::ffff:192.0.2.10", Trust.TRUSTED),  # an IPv4 peer on a dual-stack socket
    ("[2001:db8::5]", Trust.TRUSTED),
    ("fe80::1%eth0", Trust.UNKNOWN),
    ("MemoryStream", Trust.UNKNOWN),  # not an address at all
])
def test_sources_are_classified_by_the_inbound_lists(source: str, trust: Trust) -> None:
    acl = Acl.from_lists(trusted=["192.0.2.0/24", "2001:db8::/32"], deny=["192.0.2.64/26"])
    assert acl.classify(source) is trust


@pytest.mark.parametrize(("host", "refused"), [
    ("10.1.2.3", None),
    ("10.9.0.1", "denied"),
    ("192.0.2.1", "outside the allowed"),
    ("phone.example.net", "not an IP address"),
    ("[fd00::1]", None),
])
def test_contacts_are_checked_by_the_outbound_lists(host: str, refused: str | None) -> None:
    acl = Acl.from_lists(contact_allow=["10.0.0.0/8", "fd00::/8"], contact_deny=["10.9.0.0/16"])
    reason = acl.contact_refusal(host)
    assert (reason is None) if refused is None else (reason is not None and refused in reason)


def test_a_deny_list_alone_lets_every_other_address_register() -> None:
    acl = Acl.from_lists(contact_deny=["169.254.0.0/16"])
    assert acl.contact_refusal("192.0.2.1") is None
    assert acl.contact_refusal("169.254.169.254") is not None


def test_a_bad_network_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Acl.from_lists(trusted=["not a network"])
