"""Where each key of a TOML text is written: tomllib parses, but reports no line for a key.

`LineIndex` scans the text once more, following TOML's structure (not its values), so that
a configuration error can say `FILE:LINE: routes[2].gateways[0]: ...`.
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_left

KeyPath = tuple[str | int, ...]
"""A key as a path of table keys and array indices: `("routes", 2, "gateways", 0)`."""


def dotted(key: KeyPath) -> str:
    """`key` as a user points at it: `routes[2].gateways[0]`, `sip.lisen`, `"odd key".x`."""
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", part) is not None
            text = part if bare else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out += f".{text}" if out else text
    return out


class LineIndex:
    """The line of every table, key and array element of a TOML text tomllib has accepted.

    A path is a tuple of keys and array indices: `("routes", 2, "gateways", 0)`. It follows TOML's
    own rules: `[a.b]` and `[[a.b]]` headers (an array of tables gets the next index; a header
    under one refers to its latest element), dotted keys, inline tables and arrays spanning lines.
    The first place a path is written wins; `line_of` falls back to the nearest enclosing path.
    """

    _BARE = re.compile(r"[A-Za-z0-9_-]+")
    _SCALAR = re.compile(r"[^,\]}\r\n#]*")  # a number, boolean or date/time runs to a delimiter

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self._lines: dict[KeyPath, int] = {}
        self._arrays: dict[KeyPath, int] = {}  # array-of-tables path → elements seen so far
        self._scan()

    def line_of(self, key: KeyPath) -> int | None:
        for length in range(len(key), 0, -1):
            line = self._lines.get(key[:length])
            if line is not None:
                return line
        return None

    def _line(self) -> int:
        return bisect_left(self._newlines, self._pos) + 1

    def _mark(self, path: KeyPath, line: int) -> None:
        for length in range(1, len(path) + 1):
            self._lines.setdefault(path[:length], line)

    def _peek(self, n: int = 1) -> str:
        return self._text[self._pos : self._pos + n]

    def _skip(self, *, newlines: bool) -> None:
        text = self._text
        while self._pos < len(text):
            ch = text[self._pos]
            if ch in " \t" or (newlines and ch in "\r\n"):
                self._pos += 1
            elif newlines and ch == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _scan(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip(newlines=True)
            if self._pos >= len(self._text):
                return
            line = self._line()
            if self._peek(2) == "[[":
                self._pos += 2
                table = self._resolve(self._keys(), array=True)
                self._pos += 2
                self._mark(table, line)
            elif self._peek() == "[":
                self._pos += 1
                table = self._resolve(self._keys(), array=False)
                self._pos += 1
                self._mark(table, line)
            else:
                path = (*table, *self._keys())
                self._pos += 1
                self._mark(path, line)
                self._value(path)

    def _resolve(self, keys: list[str], *, array: bool) -> KeyPath:
        path: KeyPath = ()
        for i, key in enumerate(keys):
            path = (*path, key)
            if array and i == len(keys) - 1:
                index = self._arrays.get(path, 0)
                self._arrays[path] = index + 1
                path = (*path, index)
            elif path in self._arrays:
                path = (*path, self._arrays[path] - 1)
        return path

    def _keys(self) -> list[str]:
        """A dotted key, up to (not past) the `=` or `]` after it."""
        keys: list[str] = []
        while True:
            self._skip(newlines=False)
            if self._peek() in ('"', "'"):
                start = self._pos
                self._string()
                keys.append(tomllib.loads(f"k = {self._text[start:self._pos]}")["k"])
            else:
                found = self._BARE.match(self._text, self._pos)
                if found is None:  # cannot happen in text tomllib accepted; stop rather than loop
                    self._pos = len(self._text)
                    return keys
                keys.append(found[0])
                self._pos = found.end()
            self._skip(newlines=False)
            if self._peek() != ".":
                return keys
            self._pos += 1

    def _value(self, path: KeyPath) -> None:
        self._skip(newlines=False)
        ch = self._peek()
        if ch in ('"', "'"):
            self._string()
        elif ch == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if self._peek() in ("]", ""):
                    self._pos += 1
                    return
                self._mark((*path, index), self._line())
                self._value((*path, index))
                index += 1
                self._skip(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
        elif ch == "{":
            self._pos += 1
            while True:
                self._skip(newlines=True)
                if self._peek() in ("}", ""):
                    self._pos += 1
                    return
                line = self._line()
                sub = (*path, *self._keys())
                self._pos += 1
                self._mark(sub, line)
                self._value(sub)
                self._skip(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
        else:
            found = self._SCALAR.match(self._text, self._pos)
            assert found is not None
            self._pos = found.end()

    def _string(self) -> None:
        text, quote = self._text, self._peek()
        if self._peek(3) == quote * 3:
            self._pos += 3
            while self._pos < len(text):
                if quote == '"' and text[self._pos] == "\\":
                    self._pos += 2
                elif text.startswith(quote * 3, self._pos):
                    self._pos += 3
                    while self._peek() == quote:  # up to two quotes may end the content
                        self._pos += 1
                    return
                else:
                    self._pos += 1
            return
        self._pos += 1
        while self._pos < len(text) and text[self._pos] != quote:
            self._pos += 2 if quote == '"' and text[self._pos] == "\\" else 1
        self._pos += 1
