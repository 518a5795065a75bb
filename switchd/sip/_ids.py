"""Fresh identifiers: Via branches, From/To tags and Call-IDs (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3).

All three come from `secrets`: tags and Call-IDs must be unguessable (§19.3 asks for at least 32
random bits; we use 64 for tags and branches, 96 for Call-IDs), and a branch must be unique across
space and time for every transaction this node ever starts (§8.1.1.7).
"""

from __future__ import annotations

import secrets

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: every branch we create starts with it, marking RFC 3261 transaction ids."""


def new_branch() -> str:
    """A new Via branch for a new client transaction: the magic cookie then 64 random bits in hex."""
    return MAGIC_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    """A new From/To tag (§19.3): 64 random bits in hex."""
    return secrets.token_hex(8)


def new_call_id(host: str | None = None) -> str:
    """A new Call-ID (§8.1.1.4): 96 random bits in hex, then `@host` when a host is given."""
    local = secrets.token_hex(12)
    return f"{local}@{host}" if host else local
