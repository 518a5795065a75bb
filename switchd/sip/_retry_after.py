"""Retry-After header values (RFC 3261 §20.33): ``18000;duration=3600 (comment)``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._grammar import Params, bad, format_params, get_param, parse_params

__all__ = ["RetryAfter", "parse_retry_after"]

# delta-seconds [ comment ] *( SEMI retry-param ); a comment may hold nested parentheses, which
# we accept without counting them.
_RETRY_AFTER = re.compile(r"\s*([0-9]{1,10})\s*(?:\(([^)]*(?:\)[^;]*?)?)\)\s*)?(;.*)?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Seconds to wait before retrying, an optional comment and parameters (``duration``)."""

    seconds: int
    comment: str | None = None
    params: Params = ()

    @property
    def duration(self) -> int | None:
        """The ``duration`` parameter in seconds, None when absent."""
        value = get_param(self.params, "duration")
        return int(value) if value and value.isdigit() else None

    def __str__(self) -> str:
        comment = f" ({self.comment})" if self.comment is not None else ""
        return f"{self.seconds}{comment}{format_params(self.params)}"


def parse_retry_after(text: str) -> RetryAfter:
    """Parse a Retry-After value; RemoteProtocolError(400, "Bad Retry-After") when malformed."""
    m = _RETRY_AFTER.fullmatch(text)
    if m is None:
        raise bad("Retry-After", text)
    seconds_text, comment, params_text = m.groups()
    params = parse_params(params_text, "Retry-After", text) if params_text else ()
    duration = get_param(params, "duration")
    if duration is not None and not duration.isdigit():
        raise bad("Retry-After", text, "duration must be delta-seconds")
    return RetryAfter(int(seconds_text), comment, params)
