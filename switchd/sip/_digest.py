"""Digest authentication: the computation, the server's reading of credentials, the client's answer.

RFC 3261 §22.4 takes HTTP digest (RFC 2617 §3.2) for SIP; RFC 8760 adds SHA-256 (its computation
is RFC 7616's) next to MD5. Only ``qop=auth`` is spoken (auth-int, which hashes the body, is
neither offered nor answered), and a response without qop (RFC 2069) is computed for a client
that meets such a challenge but never accepted by `digest_credentials` users that require qop.

    HA1      = H(username ":" realm ":" password)              stored per account, never the password
    HA2      = H(method ":" digest-uri)
    response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)   with qop=auth
    response = H(HA1 ":" nonce ":" HA2)                             without qop (RFC 2069)

H is MD5 or SHA-256 over the UTF-8 bytes, written in lower-case hex. `verify_response` compares
with `hmac.compare_digest`, so how long a comparison takes says nothing about the expected value.

Nothing here logs, and no error message carries a password, an HA1 or a response: an error names
the field that is wrong, never its value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from ._auth import Challenge, Credentials
from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ALGORITHMS",
    "DigestAlgorithm",
    "DigestCredentials",
    "authorization",
    "challenge_value",
    "digest_credentials",
    "digest_response",
    "ha1",
    "verify_response",
]


class DigestAlgorithm(StrEnum):
    """The digest algorithms switchd speaks, by their ``algorithm=`` names (RFC 8760 §2.2)."""

    SHA256 = "SHA-256"
    MD5 = "MD5"


ALGORITHMS = (DigestAlgorithm.SHA256, DigestAlgorithm.MD5)
"""The order challenges offer them in: the stronger first (RFC 8760 §2.4: a UAC takes the first it supports)."""

_HASHES = {DigestAlgorithm.MD5: hashlib.md5, DigestAlgorithm.SHA256: hashlib.sha256}
_HEX_LENGTH = {DigestAlgorithm.MD5: 32, DigestAlgorithm.SHA256: 64}
_NC = re.compile(r"[0-9A-Fa-f]{8}")
_HEX = re.compile(r"[0-9A-Fa-f]+")


def _h(algorithm: DigestAlgorithm, text: str) -> str:
    return _HASHES[algorithm](text.encode("utf-8")).hexdigest()


def ha1(algorithm: DigestAlgorithm, username: str, realm: str, password: str) -> str:
    """H(username:realm:password): what an account stores for `algorithm` instead of its password."""
    return _h(algorithm, f"{username}:{realm}:{password}")


def digest_response(algorithm: DigestAlgorithm, ha1: str, *, method: str, uri: str, nonce: str,
                    qop: str | None, nc: str | None, cnonce: str | None) -> str:
    """The request-digest (RFC 2617 §3.2.2.1) for `method` and `uri` under `nonce`.

    With ``qop="auth"``, `nc` (8 hex digits) and `cnonce` are part of it; with ``qop=None`` the
    RFC 2069 form is computed. Raises LocalProtocolError for any other qop or a missing nc/cnonce.
    """
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop is None:
        return _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    if qop != "auth" or nc is None or cnonce is None:
        raise LocalProtocolError(f"digest: qop {qop!r} needs nc and cnonce, and only 'auth' is spoken")
    return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """An Authorization / Proxy-Authorization value of scheme Digest, every field a server checks read.

    `response` is lower-case hex of the algorithm's length; `qop` is "auth" or None; `nc` is the
    8-hex-digit nonce count as sent (None without qop), `nonce_count` its value.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: DigestAlgorithm = DigestAlgorithm.MD5
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @property
    def nonce_count(self) -> int:
        """The nonce count (``nc``) as a number; 0 without qop."""
        return 0 if self.nc is None else int(self.nc, 16)

    def __repr__(self) -> str:  # the response is no secret, but nothing from a credential is shown whole
        return (f"DigestCredentials(username={self.username!r}, realm={self.realm!r}, "
                f"algorithm={self.algorithm.value}, qop={self.qop!r}, nc={self.nc!r})")


def _refuse(where: str, detail: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{where}: {detail}", reason=f"Bad {where}")


def digest_credentials(credentials: Credentials, where: str = "Authorization") -> DigestCredentials:
    """The digest fields of `credentials`, checked; RemoteProtocolError (400, naming the field) when not usable.

    Required: scheme Digest, username, realm, nonce, uri, response (hex of the algorithm's length);
    algorithm MD5 (the default) or SHA-256; qop, when present, "auth" with an 8-hex-digit nc and a
    cnonce (RFC 2617 §3.2.2: nc and cnonce only with qop).
    """
    if credentials.scheme.lower() != "digest":
        raise _refuse(where, f"scheme {credentials.scheme!r} is not Digest")
    fields: dict[str, str] = {}
    for name in ("username", "realm", "nonce", "uri", "response"):
        value = credentials.param(name)
        if not value:
            raise _refuse(where, f"no {name}")
        fields[name] = value
    text = credentials.param("algorithm")
    try:
        algorithm = DigestAlgorithm(text.upper()) if text else DigestAlgorithm.MD5
    except ValueError:
        raise _refuse(where, f"algorithm {text!r} is not MD5 or SHA-256") from None
    response = fields.pop("response")
    if len(response) != _HEX_LENGTH[algorithm] or not _HEX.fullmatch(response):
        raise _refuse(where, f"response is not {_HEX_LENGTH[algorithm]} hex digits ({algorithm.value})")
    qop = credentials.param("qop")
    nc = credentials.param("nc")
    cnonce = credentials.param("cnonce")
    if qop is None:
        if nc is not None or cnonce is not None:
            raise _refuse(where, "nc or cnonce without qop")
    elif qop != "auth":
        raise _refuse(where, f"qop {qop!r} is not auth")
    elif nc is None or not _NC.fullmatch(nc):
        raise _refuse(where, "nc is not 8 hex digits")
    elif not cnonce:
        raise _refuse(where, "qop=auth without a cnonce")
    return DigestCredentials(response=response.lower(), algorithm=algorithm, qop=qop, nc=nc, cnonce=cnonce,
                             opaque=credentials.param("opaque"), **fields)


def verify_response(credentials: DigestCredentials, ha1: str, method: str) -> bool:
    """True when `credentials` answer their nonce for `method` with the account's `ha1` (constant time).

    `ha1` must be the account's HA1 for ``credentials.algorithm``. The nonce, nc, realm and uri are
    the caller's to check (whether the nonce is ours and fresh, the count new, the uri the request's).
    """
    expected = digest_response(credentials.algorithm, ha1, method=method, uri=credentials.uri,
                               nonce=credentials.nonce, qop=credentials.qop, nc=credentials.nc,
                               cnonce=credentials.cnonce)
    return hmac.compare_digest(expected, credentials.response)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge_value(realm: str, nonce: str, algorithm: DigestAlgorithm, *, stale: bool = False) -> str:
    """A WWW-/Proxy-Authenticate value offering `algorithm` with qop=auth; ``stale=true`` when `stale`.

    A server offering both algorithms sends one such header per algorithm, in `ALGORITHMS` order.
    """
    value = f"Digest realm={_quoted(realm)}, nonce={_quoted(nonce)}, algorithm={algorithm.value}, qop=\"auth\""
    return value + ", stale=true" if stale else value


def authorization(challenge: Challenge, *, method: str, uri: str, username: str, password: str, nc: int,
                  cnonce: str) -> str:
    """The (Proxy-)Authorization value answering `challenge` for a request `method` to `uri`.

    Takes the challenge's algorithm (MD5 when absent; SHA-256) and, when it offers qop "auth",
    answers with qop=auth, nonce count `nc` and `cnonce`; without qop, in the RFC 2069 form.
    The challenge's opaque is echoed. Raises LocalProtocolError when the challenge cannot be
    answered (not Digest, no realm or nonce, another algorithm, qop auth-int only).
    """
    if challenge.scheme.lower() != "digest":
        raise LocalProtocolError(f"cannot answer a {challenge.scheme!r} challenge: only Digest is spoken")
    if not 0 < nc < 2**32:
        raise LocalProtocolError(f"nonce count {nc} is not in 1..2**32-1 (8 hex digits)")
    realm, nonce = challenge.realm, challenge.nonce
    if realm is None or nonce is None:
        raise LocalProtocolError("cannot answer a digest challenge without realm and nonce")
    text = challenge.param("algorithm")
    try:
        algorithm = DigestAlgorithm(text.upper()) if text else DigestAlgorithm.MD5
    except ValueError:
        raise LocalProtocolError(f"cannot answer digest algorithm {text!r}: only MD5 and SHA-256") from None
    offered = challenge.param("qop")
    qop: str | None = None
    if offered is not None:
        if "auth" not in [q.strip().lower() for q in offered.split(",")]:
            raise LocalProtocolError(f"cannot answer qop {offered!r}: only auth is spoken")
        qop = "auth"
    count = f"{nc:08x}" if qop else None
    response = digest_response(algorithm, ha1(algorithm, username, realm, password), method=method, uri=uri,
                               nonce=nonce, qop=qop, nc=count, cnonce=cnonce if qop else None)
    parts = [f"username={_quoted(username)}", f"realm={_quoted(realm)}", f"nonce={_quoted(nonce)}",
             f"uri={_quoted(uri)}", f"response={_quoted(response)}", f"algorithm={algorithm.value}"]
    if qop:
        parts += [f"qop={qop}", f"nc={count}", f"cnonce={_quoted(cnonce)}"]
    opaque = challenge.param("opaque")
    if opaque is not None:
        parts.append(f"opaque={_quoted(opaque)}")
    return "Digest " + ", ".join(parts)
