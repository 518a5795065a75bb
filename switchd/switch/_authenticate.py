"""Authenticator: the digest check of a request (RFC 3261 §22), and the challenge when it fails.

A REGISTER is checked against Authorization and challenged with 401 and WWW-Authenticate; an
INVITE (proxy-style, as a softswitch that routes calls onward is) against Proxy-Authorization and
challenged with 407 and Proxy-Authenticate. Each challenge offers the node's algorithms — by
default SHA-256 first, then MD5 (RFC 8760 §2.4) — one header each, with one fresh nonce
(`switchd.sip.Nonces`) and qop="auth". Credentials computed with an algorithm not offered are
refused (403): a node configured for SHA-256 only must not take MD5 answers.

`check(request, proxy=..., now=...)` gives one of:

===============  ============================================================================
Authenticated    the response is right, under a fresh nonce of ours with a new nonce count
Challenged       no credentials for our realm (the usual first request): a plain challenge; or
                 a right response under a nonce that is stale, not ours (another node, a restart)
                 or whose count was seen (a replay, or forgotten): a challenge with stale=true,
                 which a phone answers at once without asking its user
AuthRefused      400: credentials that are not digest or miss a field, or whose uri is not the
                 Request-URI; 403: qop missing, an algorithm not offered, an unknown or disabled
                 account, a wrong response
===============  ============================================================================

An unknown account and a wrong password get the same 403 and take the same work (a digest is
computed against a stand-in), so neither the answer nor its timing tells which usernames exist.

Nothing here logs a password, an HA1 or a digest response; `AuthRefused.why` (for the caller's
log) names the account and what was wrong, never a value that was sent or stored.

Node-local like `Admission`: made once by the application, used from every connection's task;
the nonce counts are its only state (bounded, see `switchd.sip.Nonces`). Accounts are looked up by
the `accounts` function handed in (the registrar's in-memory snapshot).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from switchd.billing import AccountInfo
from switchd.sip import (
    ALGORITHMS,
    Credentials,
    DigestAlgorithm,
    NonceCheck,
    Nonces,
    RemoteProtocolError,
    Request,
    challenge_value,
    digest_credentials,
    parse_uri,
    verify_response,
)

__all__ = ["AccountLookup", "AuthOutcome", "AuthRefused", "Authenticated", "Authenticator", "Challenged"]

AccountLookup = Callable[[str], Awaitable[AccountInfo | None]]
"""``await accounts(username)``: the account of that name in the authenticator's realm, or None."""

# Stands in for the HA1 of an account that does not exist, so that case costs the same digest.
_NOBODY = AccountInfo("", "", "0" * 32, "0" * 64)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The request is the account's."""

    account: AccountInfo


@dataclass(frozen=True, slots=True)
class Challenged:
    """Answer `status` (401/407) with `headers` (the challenges); `why` is for the log."""

    status: int
    headers: tuple[tuple[str, str], ...]
    stale: bool
    why: str


@dataclass(frozen=True, slots=True)
class AuthRefused:
    """Answer `status` (400/403) with `reason`; `why` is for the log (never a secret)."""

    status: int
    reason: str | None
    why: str


AuthOutcome = Authenticated | Challenged | AuthRefused


class Authenticator:
    """Digest checks and challenges for one realm (see the module docstring).

    ``realm``: of every challenge and account. ``nonces``: issues and checks the nonces (its
    secret and ttl). ``accounts``: looks an account up by username. ``algorithms``: what a
    challenge offers, in order, and all that credentials may use; `ALGORITHMS` (SHA-256, MD5).
    """

    __slots__ = ("accounts", "algorithms", "nonces", "realm")

    def __init__(self, realm: str, nonces: Nonces, accounts: AccountLookup,
                 algorithms: tuple[DigestAlgorithm, ...] = ALGORITHMS) -> None:
        if not algorithms:
            raise ValueError("Authenticator: offer at least one digest algorithm")
        self.realm = realm
        self.nonces = nonces
        self.accounts = accounts
        self.algorithms = algorithms

    def challenge(self, *, proxy: bool, now: float, stale: bool = False, why: str = "no credentials") -> Challenged:
        """A 407 (proxy) or 401 challenge with a fresh nonce, one header per algorithm."""
        nonce = self.nonces.issue(now)
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        headers = tuple((header, challenge_value(self.realm, nonce, a, stale=stale)) for a in self.algorithms)
        return Challenged(407 if proxy else 401, headers, stale, why)

    async def check(self, request: Request, *, proxy: bool, now: float) -> AuthOutcome:
        """Authenticate `request` by its (Proxy-)Authorization for our realm (see the module docstring)."""
        where = "Proxy-Authorization" if proxy else "Authorization"
        try:
            offered = request.proxy_authorization if proxy else request.authorization
        except RemoteProtocolError as exc:
            return AuthRefused(400, exc.reason, str(exc))
        ours = [c for c in offered if c.scheme.lower() == "digest" and c.realm == self.realm]
        if not ours:
            return self.challenge(proxy=proxy, now=now, why="no credentials for our realm" if offered else
                                  "no credentials")
        return await self._verify(request, ours[0], where, proxy=proxy, now=now)

    async def _verify(self, request: Request, credentials: Credentials, where: str, *, proxy: bool,
                      now: float) -> AuthOutcome:
        try:
            digest = digest_credentials(credentials, where)
        except RemoteProtocolError as exc:
            return AuthRefused(400, exc.reason, str(exc))
        if not _same_uri(digest.uri, request):
            return AuthRefused(400, f"Bad {where}", f"{where}: uri is not the Request-URI")
        user = digest.username
        if digest.qop is None:
            return AuthRefused(403, None, f"account {user!r}: answered without qop=auth")
        if digest.algorithm not in self.algorithms:
            return AuthRefused(403, None, f"account {user!r}: answered with {digest.algorithm.value}, not offered")
        account = await self.accounts(user)
        known = account is not None and account.enabled
        secret = (account if known and account is not None else _NOBODY).ha1(digest.algorithm.value)
        right = verify_response(digest, secret, str(request.method))  # for an unknown account too: same work
        if not known:
            return AuthRefused(403, None, f"account {user!r} is {'disabled' if account else 'unknown'}")
        if not right:
            return AuthRefused(403, None, f"account {user!r}: wrong digest response ({digest.algorithm.value})")
        assert account is not None
        state = self.nonces.check(digest.nonce, now)
        if state is not NonceCheck.VALID:
            return self.challenge(proxy=proxy, now=now, stale=True, why=f"account {user!r}: {state.value} nonce")
        if not self.nonces.count(digest.nonce, digest.nonce_count, now):
            return self.challenge(proxy=proxy, now=now, stale=True,
                                  why=f"account {user!r}: nonce count {digest.nonce_count} not new (a replay?)")
        return Authenticated(account)


def _same_uri(text: str, request: Request) -> bool:
    """True when the credentials' digest-uri names the Request-URI (RFC 2617 §3.2.2.5, a SHOULD).

    The Request-URI itself, compared as URIs; or — as SIPp's ``[authentication]`` writes it —
    only its scheme, host and port without the user (``sip:host:port`` for a request to
    ``sip:bob@host:port``): the resource is still the one the request went to. Nothing weaker: a
    uri of another host is refused. (A captured response cannot be replayed under either form:
    its nonce count is spent, see `Nonces.count`.)
    """
    target = request.uri
    if text == str(target):
        return True
    try:
        uri = parse_uri(text, "digest-uri")
    except RemoteProtocolError:
        return False
    if uri == target:
        return True
    return (uri.is_sip and target.is_sip and uri.user is None and uri.scheme == target.scheme
            and uri.host.lower() == target.host.lower() and uri.port == target.port)
