"""Caller and callee numbers become E.164 by the documented rule, or a clear InvalidNumber."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchd.billing import InvalidNumber, normalize_number

UK = {"country_code": "44", "international_prefix": "00", "trunk_prefix": "0", "national_digits": 10}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155550123", "+14155550123"),
        ("4155550123", "+14155550123"),  # national number
        ("14155550123", "+14155550123"),  # trunk prefix + national number
        ("011442071234567", "+442071234567"),  # international prefix
        ("(415) 555-0123", "+14155550123"),  # visual separators
        ("sip:+442071234567@gw.example.net;user=phone", "+442071234567"),
        ("tel:+1-415-555-0123", "+14155550123"),
        ("SIP:4155550123@10.0.0.1", "+14155550123"),
    ],
)
def test_nanp_numbers_normalise_to_e164(raw: str, expected: str) -> None:
    assert normalize_number(raw) == expected


def test_a_uk_numbering_plan_uses_its_own_prefixes() -> None:
    assert normalize_number("02071234567", **UK) == "+442071234567"  # type: ignore[arg-type]
    assert normalize_number("0014155550123", **UK) == "+14155550123"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw", ["anonymous", "", "+", "1001", "+0123456", "+1234567890123456", "12ab34", "٣٣٣"]
)
def test_what_is_not_an_e164_number_raises_invalid_number_naming_it(raw: str) -> None:
    with pytest.raises(InvalidNumber, match=repr(raw).replace("+", r"\+")):
        normalize_number(raw)


@given(st.text(max_size=30))
def test_any_string_either_normalises_to_e164_or_raises_invalid_number(raw: str) -> None:
    try:
        result = normalize_number(raw)
    except InvalidNumber:
        return
    assert result.startswith("+") and result[1:].isdigit() and 2 <= len(result) - 1 <= 15


@given(st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True))
def test_an_e164_number_is_a_fixed_point(number: str) -> None:
    assert normalize_number(number) == number
    assert normalize_number(normalize_number(number)) == number
