"""Headers: an ordered, case-insensitive multi-map of SIP header fields.

Names are compared case-insensitively and compact forms (RFC 3261 §7.3.3: ``v`` → ``Via``) are
normalised to the full name. Fields keep their order. A field of a header this package does not
know keeps its raw line and is re-emitted byte-for-byte; known headers are re-emitted as
``Full-Name: value``. Comma-separated values are split only for headers whose RFC grammar is a
comma list (§7.3.1), never inside quotes or angle brackets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ._errors import LocalProtocolError
from ._grammar import TOKEN, split_comma

__all__ = ["Headers", "canonical_name"]

_KNOWN = [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length", "Content-Type",
    "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "In-Reply-To", "Max-Forwards",
    "MIME-Version", "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity", "Path", "Priority",
    "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Reply-To", "Request-Disposition",
    "Require", "Retry-After", "Route", "RSeq", "Server", "Service-Route", "Session-Expires", "Subject",
    "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
]
# RFC 3261 §7.3.3 and the extensions that define compact forms (3265, 3515, 3841, 3892, 4028).
_COMPACT = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "o": "Event", "r": "Refer-To", "s": "Subject", "t": "To",
    "u": "Allow-Events", "v": "Via", "x": "Session-Expires",
}
CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN}
CANONICAL.update(_COMPACT)
# Name → (lower-case canonical key, canonical name), keyed by the lower-case and the canonical
# spelling so the usual spelling needs no lower(). One shared tuple per header, so a caller can
# test for a header by identity.
ENTRIES: dict[str, tuple[str, str]] = {name: (name.lower(), name) for name in CANONICAL.values()}
KNOWN: dict[str, tuple[str, str]] = {alias: ENTRIES[name] for alias, name in CANONICAL.items()}
KNOWN.update(ENTRIES)

# Headers whose grammar is `x *(COMMA x)` (RFC 3261 §7.3.1, §20; extensions). Authorization and
# the *-Authenticate headers are comma-separated *inside* one value and are deliberately absent.
LIST_HEADERS = frozenset(name.lower() for name in [
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Call-Info", "Contact", "Content-Encoding", "Content-Language", "Error-Info",
    "In-Reply-To", "P-Asserted-Identity", "Path", "Proxy-Require", "Reason", "Record-Route",
    "Reject-Contact", "Require", "Route", "Service-Route", "Supported", "Unsupported", "Via", "Warning",
])

# One field: (lower-case key, name as emitted, value, raw line or None). A raw line is kept only
# for unknown headers as parsed, and dropped as soon as the field is replaced.
Field = tuple[str, str, str, str | None]


def canonical_name(name: str) -> str:
    """The full, canonically spelled name for `name` (``"v"`` → ``"Via"``); unknown names as given."""
    return CANONICAL.get(name.lower(), name)


def _key(name: str) -> str:
    """The lower-case canonical key of header `name`."""
    entry = KNOWN.get(name)
    if entry is not None:
        return entry[0]
    lowered = name.lower()
    entry = KNOWN.get(lowered)
    return lowered if entry is None else entry[0]


def _checked(name: str, value: str) -> Field:
    entry = KNOWN.get(name) or KNOWN.get(name.lower())
    if entry is None:
        if not TOKEN.fullmatch(name):
            raise LocalProtocolError(f"header name {name!r} is not a token")
        entry = (name.lower(), name)
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"header {name!r} value {value!r} contains CR or LF")
    return (entry[0], entry[1], value.strip(), None)


class Headers:
    """Ordered, case-insensitive SIP header fields; see the module docstring."""

    __slots__ = ("_cache", "_fields")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[Field] = [_checked(name, value) for name, value in fields]
        # Parsed grammar of a header, by accessor; dropped on any change (see _message).
        self._cache: dict[str, Any] = {}

    @classmethod
    def _from_fields(cls, fields: list[Field]) -> Headers:
        """Wrap fields the parser already split and normalised (no re-validation)."""
        headers = cls.__new__(cls)
        headers._fields = fields
        headers._cache = {}
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header `name` (first list element for list headers), or `default`."""
        key = _key(name)
        for fkey, _, value, _ in self._fields:
            if fkey == key:
                if key in LIST_HEADERS:
                    values = split_comma(value)
                    if values:
                        return values[0]
                    continue
                return value
        return default

    def _first(self, key: str) -> str | None:
        """The first field value for lower-case canonical `key` of a non-list header."""
        for field in self._fields:
            if field[0] == key:
                return field[2]
        return None

    def _all(self, key: str) -> list[str]:
        """Every value of list header `key` (lower-case canonical), comma lists split."""
        out: list[str] = []
        for field in self._fields:
            if field[0] == key:
                value = field[2]
                if "," in value:
                    out.extend(split_comma(value))
                elif value:
                    out.append(value)
        return out

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name` in order; comma lists split where RFC 3261 allows."""
        key = _key(name)
        if key in LIST_HEADERS:
            out: list[str] = []
            for fkey, _, value, _ in self._fields:
                if fkey == key:
                    out.extend(split_comma(value))
            return out
        return [value for fkey, _, value, _ in self._fields if fkey == key]

    def add(self, name: str, value: str) -> None:
        """Append a field `name: value` after all others.

        Raises LocalProtocolError if `name` is not a token or `value` contains CR or LF.
        """
        self._fields.append(_checked(name, value))
        if self._cache:
            self._cache.clear()

    def prepend(self, name: str, value: str) -> None:
        """Insert `name: value` before the first field of that name (at the top if none).

        This is how a proxy adds its Via or a Record-Route: topmost.
        """
        field = _checked(name, value)
        for index, existing in enumerate(self._fields):
            if existing[0] == field[0]:
                self._fields.insert(index, field)
                break
        else:
            self._fields.insert(0, field)
        self._cache.clear()

    def set(self, name: str, value: str) -> None:
        """Replace every field `name` by one `name: value`, where the first one was (else append)."""
        field = _checked(name, value)
        key = field[0]
        position = None
        kept: list[Field] = []
        for existing in self._fields:
            if existing[0] == key:
                if position is None:
                    position = len(kept)
            else:
                kept.append(existing)
        if position is None:
            kept.append(field)
        else:
            kept.insert(position, field)
        self._fields = kept
        self._cache.clear()

    def remove(self, name: str) -> int:
        """Remove every field `name`; returns how many were removed."""
        key = _key(name)
        before = len(self._fields)
        self._fields = [f for f in self._fields if f[0] != key]
        self._cache.clear()
        return before - len(self._fields)

    def _keep(self, keys: frozenset[str]) -> None:
        """Drop every field whose lower-case key is not in `keys`, and their parsed forms (see `trim`)."""
        self._fields = [f for f in self._fields if f[0] in keys]
        cache = self._cache
        for key in [k for k in cache if k not in keys]:
            del cache[key]

    def copy(self) -> Headers:
        """An independent copy (raw lines of unknown headers kept)."""
        return Headers._from_fields(list(self._fields))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        return any(f[0] == key for f in self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(name, value) per field, in order; names are the full canonical names when known."""
        return ((name, value) for _, name, value, _ in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(f[0], f[2]) for f in self._fields] == [(f[0], f[2]) for f in other._fields]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({[(name, value) for _, name, value, _ in self._fields]!r})"
