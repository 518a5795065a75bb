"""E.164 normalisation of caller and callee numbers (a plain function, no I/O).

The rule, applied in this order to the string as received or dialled:

1. A SIP or tel URI (`sip:`, `sips:`, `tel:`) is reduced to its user part: the text after the
   scheme, up to the first `@` or `;`. A display name or angle brackets are not accepted here;
   the SIP layer hands over the URI.
2. Visual separators are removed: space, `-`, `.`, `(`, `)` (RFC 3966 visual-separator).
3. What remains must be digits, optionally after one leading `+`; otherwise InvalidNumber.
4. `+digits`                                    → `+digits` (already international)
5. starts with `international_prefix` (011)      → `+` and the rest
6. `trunk_prefix` + `national_digits` digits      → `+` country_code and the national digits
7. exactly `national_digits` digits              → `+` country_code and the digits
8. anything else (short codes, extensions)       → InvalidNumber
9. The result must have 2 to 15 digits after the `+` (ITU-T E.164) and must not start with 0.

The defaults are the North American Numbering Plan (country code 1, international prefix 011,
trunk prefix 1, ten-digit national numbers). A UK deployment would pass `country_code="44",
international_prefix="00", trunk_prefix="0", national_digits=10`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ._errors import InvalidNumber

_SEPARATORS = str.maketrans("", "", " -.()")
_SCHEMES = ("sip:", "sips:", "tel:")


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberingPlan:
    """How national numbers of this deployment become E.164 (see normalize_number)."""

    country_code: str = "1"  # digits of the country calling code, without '+'
    international_prefix: str = "011"  # dialled before a country code
    trunk_prefix: str = "1"  # dialled before a national number
    national_digits: int = 10  # length of a national significant number


def normalize_number(
    raw: str,
    *,
    country_code: str = "1",
    international_prefix: str = "011",
    trunk_prefix: str = "1",
    national_digits: int = 10,
) -> str:
    """`raw` as an E.164 number `+<digits>` by the rule in this module's docstring.

    Raises InvalidNumber naming `raw` when it is not a number the rule can place.
    """
    text = raw.strip()
    lowered = text.lower()
    for scheme in _SCHEMES:
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            for stop in "@;":
                text = text.split(stop, 1)[0]
            break
    text = text.translate(_SEPARATORS)
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not digits.isascii() or not digits.isdigit():
        raise InvalidNumber(f"{raw!r} is not a telephone number (only digits and one leading '+')")
    if plus:
        international = digits
    elif international_prefix and digits.startswith(international_prefix):
        international = digits[len(international_prefix) :]
    elif (
        trunk_prefix
        and len(digits) == len(trunk_prefix) + national_digits
        and digits.startswith(trunk_prefix)
    ):
        international = country_code + digits[len(trunk_prefix) :]
    elif len(digits) == national_digits:
        international = country_code + digits
    else:
        raise InvalidNumber(f"{raw!r} is neither international nor a {national_digits}-digit national number")
    if not 2 <= len(international) <= 15 or international.startswith("0"):
        raise InvalidNumber(f"{raw!r} gives +{international}, which is not a valid E.164 number")
    return "+" + international


@lru_cache(maxsize=65_536)
def normalize_or_none(raw: str, plan: NumberingPlan) -> str | None:
    """normalize_number(raw) under `plan`, or None when `raw` is not a number (e.g. 'anonymous').

    Cached: the same subscribers call and are called over and over, and this runs on the store's
    event loop for every CDR opened.
    """
    try:
        return normalize_number(
            raw,
            country_code=plan.country_code,
            international_prefix=plan.international_prefix,
            trunk_prefix=plan.trunk_prefix,
            national_digits=plan.national_digits,
        )
    except InvalidNumber:
        return None
