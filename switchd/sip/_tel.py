"""Telephone numbers in URIs: ``tel:`` (RFC 3966) and ``sip:`` with ``user=phone`` (RFC 3261 §19.1.1).

Both carry an RFC 3966 telephone-subscriber: a global number (``+`` then digits, with visual
separators ``- . ( )``) or a local number (hex digits, ``*``, ``#``, separators) that MUST have a
``phone-context`` (§5.1.5), followed by ``;ext=``, ``;isub=``, ``;phone-context=`` and other
parameters. `parse_uri` checks that grammar for every ``tel:`` URI and every SIP URI with
``user=phone``, so a URI that parsed has a well-formed number; `dialled_number` reads it.

Accepted on purpose: any parameter order, parameters after a global number (``phone-context``
included), and an escaped number (``%23`` for ``#``, as a SIP user part must write it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ._grammar import bad

if TYPE_CHECKING:
    from ._uri import SipUri

__all__ = ["check_subscriber", "dialled_number", "is_phone"]

_SEPARATORS = "-.()"  # RFC 3966 visual-separator
_WITHOUT_SEPARATORS = str.maketrans("", "", _SEPARATORS)
# global-number-digits = "+" *phonedigit DIGIT *phonedigit
_GLOBAL = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
# local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
_LOCAL = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_PNAME = re.compile(r"[A-Za-z0-9\-]+")
# paramchar = param-unreserved / unreserved / pct-encoded
_PVALUE = re.compile(r"(?:[A-Za-z0-9\[\]/:&+$\-_.!~*'()]|%[0-9A-Fa-f]{2})+")
_PHONEDIGITS = re.compile(r"[0-9\-.()]+")
_URIC = re.compile(r"(?:[A-Za-z0-9;/?:@&=+$,\-_.!~*'()]|%[0-9A-Fa-f]{2})+")
_DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?")


def is_phone(params: tuple[tuple[str, str | None], ...]) -> bool:
    """True when SIP URI parameters hold ``user=phone`` (case-insensitive)."""
    for name, value in params:
        if name.lower() == "user":
            return value is not None and value.lower() == "phone"
    return False


def check_subscriber(text: str, where: str, whole: str) -> str:
    """The number of telephone-subscriber `text`, visual separators removed (``+14155550199``).

    `whole` (the URI) is quoted in errors. Raises RemoteProtocolError (400, "Bad <where>") when
    `text` is not an RFC 3966 telephone-subscriber.
    """
    number, _, params = text.partition(";")
    if "%" in number:  # a SIP user part escapes "#" (RFC 3261 §25.1 user-unreserved)
        number = unquote(number, errors="replace")  # a bad escape fails the grammar below
    is_global = number[:1] == "+"
    if not (_GLOBAL if is_global else _LOCAL).fullmatch(number):
        raise bad(where, whole, f"{number!r} is not a telephone number (RFC 3966)")
    has_context = False
    for item in params.split(";") if params else ():
        name, eq, value = item.partition("=")
        if not _PNAME.fullmatch(name) or (eq and not _PVALUE.fullmatch(value)):
            raise bad(where, whole, f"bad telephone-number parameter {item!r}")
        lname = name.lower()
        if lname == "phone-context":
            if not (_GLOBAL.fullmatch(value) or _DOMAIN.fullmatch(value)):
                raise bad(where, whole, f"bad phone-context {value!r}")
            has_context = True
        elif (lname == "ext" and not _PHONEDIGITS.fullmatch(value)) or (lname == "isub" and not _URIC.fullmatch(value)):
            raise bad(where, whole, f"bad {lname} {value!r}")
    if not is_global and not has_context:
        raise bad(where, whole, "a local number needs a phone-context (RFC 3966 §5.1.5)")
    return number.translate(_WITHOUT_SEPARATORS)


def dialled_number(uri: SipUri) -> str | None:
    """The number `uri` dials: what a switch routes on.

    ``tel:`` — its number without visual separators (``tel:+1-415-555-0199`` → ``+14155550199``;
    a local number keeps its digits, ``*`` and ``#``); a SIP URI with ``user=phone`` likewise from
    its user part; any other SIP URI — its user part as written (``sip:service@host`` →
    ``service``). None when the URI names no number: a SIP URI without a user part, or another
    scheme. Raises RemoteProtocolError for a number that breaks RFC 3966, which `parse_uri` has
    already refused for any URI it returned.
    """
    if uri.scheme == "tel" and uri.opaque is not None:
        return check_subscriber(uri.opaque, "tel URI", str(uri))
    if not uri.is_sip or uri.user is None:
        return None
    if is_phone(uri.params):
        return check_subscriber(uri.user, "URI", str(uri))
    return uri.user
