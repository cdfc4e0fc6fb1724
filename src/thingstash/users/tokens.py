"""ID tokens verified: a JWT signed by the identity provider's key (users/keyset.py), with its
issuer, audience and times checked, becomes a User; any other token is TokenRejected with a reason
that says what is wrong (the web layer answers 401 with it).

Only asymmetric algorithms are accepted, and only the one the provider's key is for (PyJWT binds a
JWK to its algorithm): `none` is refused, and so are the shared-secret HS* algorithms, whose
"HS256 signed with the provider's public key" forgery would otherwise pass. Times (exp, nbf, iat,
Firebase's auth_time) are allowed LEEWAY seconds of clock skew. A verified token is remembered
until it expires (at most CACHE_SIZE of them), so a user's many requests cost one signature check.

Firebase Authentication's ID tokens are such JWTs (RS256, issuer
https://securetoken.google.com/<project>, audience <project>); the rules' `auth` is made as
Firebase makes it: {"uid": sub, "provider": firebase.sign_in_provider, "token": the claims}.
In emulator mode (Settings.auth_emulator, loopback only) tokens are not checked against keys,
as Firebase's emulators do: their claims are taken as given, but an expired one is still refused.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import exceptions as jwterrors

from thingstash.core.config import Settings
from thingstash.users.keyset import KeySet, KeysUnavailable, UnknownKey

ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY = 30  # seconds of clock skew allowed between the provider and this server
CACHE_SIZE = 10_000
# What `auth.provider` is for a token that does not say (not Firebase's, or a custom token's).
DEFAULT_PROVIDER = "custom"
MAX_UID_LENGTH = 128  # Firebase's own limit on a uid
MAX_TOKEN_LENGTH = 32 * 1024
# A JWT in its compact form: three base64url parts joined by dots (an unsigned one's last empty).
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class TokenRejected(Exception):
    """A token that does not prove who its user is; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProviderUnavailable(TokenRejected):
    """The provider's keys were never fetched, so no token can be checked (the web layer may
    prefer 503 to 401 for it)."""


@dataclass(frozen=True)
class User:
    """Who a verified token says it comes from. `auth` is the rules' `auth` variable."""

    uid: str
    claims: dict[str, Any]
    auth: dict[str, Any]


def user_of(claims: dict[str, Any]) -> User:
    """The User of verified claims (`sub` is checked to be a non-empty string)."""
    uid = claims["sub"]
    firebase = claims.get("firebase")
    provider = firebase.get("sign_in_provider") if isinstance(firebase, dict) else None
    if not isinstance(provider, str) or not provider:
        provider = DEFAULT_PROVIDER
    return User(uid=uid, claims=claims, auth={"uid": uid, "provider": provider, "token": claims})


class Verifier:
    """Verifies ID tokens against one provider: its JWKS URL, issuer and audience."""

    def __init__(
        self,
        *,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        firebase: bool = False,
        emulator: bool = False,
        keys: KeySet | None = None,
        leeway: float = LEEWAY,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        if keys is None and jwks_url is not None:
            keys = KeySet(jwks_url)
        if not emulator and (keys is None or not issuer or not audience):
            raise ValueError("a Verifier needs a JWKS URL, an issuer and an audience")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._firebase = firebase
        self._emulator = emulator
        self._leeway = leeway
        self._cache = _Cache(cache_size)

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier | None:
        """The verifier the settings configure, None when they configure no users."""
        if not settings.auth_jwks_url and not settings.auth_emulator:
            return None
        return cls(
            jwks_url=settings.auth_jwks_url,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            firebase=settings.firebase_project is not None,
            emulator=settings.auth_emulator,
        )

    def verify(self, token: str) -> User:
        """The User `token` proves, else TokenRejected saying why."""
        if not isinstance(token, str) or not token:
            raise TokenRejected("malformed token: empty")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected(f"malformed token: longer than {MAX_TOKEN_LENGTH} characters")
        if not _COMPACT.fullmatch(token):
            raise TokenRejected("malformed token: not three base64url parts joined by dots")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        now = time.time()  # PyJWT's clock for exp, nbf and iat too
        cached = self._cache.get(digest, now - self._leeway)
        if cached is not None:
            return cached
        claims = self._emulated(token) if self._emulator else self._verified(token)
        uid = claims.get("sub")
        if not isinstance(uid, str) or not uid:
            raise TokenRejected("token has no subject (sub)")
        if len(uid) > MAX_UID_LENGTH:
            raise TokenRejected(f"token's subject (sub) is longer than {MAX_UID_LENGTH}")
        if self._firebase and not self._emulator:
            auth_time = claims.get("auth_time")
            if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
                raise TokenRejected("token has no auth_time")
            if auth_time > now + self._leeway:
                raise TokenRejected("token's auth_time is in the future")
        user = user_of(claims)
        exp = claims.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            self._cache.put(digest, user, float(exp), now - self._leeway)
        return user

    def _verified(self, token: str) -> dict[str, Any]:
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenRejected("unsigned token (alg none) refused")
        if alg not in ALGORITHMS:
            kind = "shared-secret algorithm" if alg.upper().startswith("HS") else "algorithm"
            raise TokenRejected(f"{kind} {alg} refused: only asymmetric signatures are accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed token: its key id (kid) is not a string")
        assert self._keys is not None
        try:
            key = self._keys.key(kid)
        except UnknownKey:
            raise TokenRejected(f"signed by an unknown key (kid {kid!r})") from None
        except KeysUnavailable as error:
            raise ProviderUnavailable(str(error)) from None
        return _decode(
            token,
            key,
            algorithms=[alg],
            issuer=self._issuer,
            audience=self._audience,
            leeway=self._leeway,
        )

    def _emulated(self, token: str) -> dict[str, Any]:
        _header(token)
        options: Any = {
            "verify_signature": False,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": False,
        }
        return _decode(token, None, options=options, leeway=self._leeway)


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwterrors.PyJWTError as error:
        raise TokenRejected(f"malformed token: {error}") from None


def _decode(token: str, key: Any, **arguments: Any) -> dict[str, Any]:
    """PyJWT's decode, its errors made TokenRejected with a reason a person can read."""
    if key is not None:
        arguments["options"] = {"require": ["exp", "iat", "iss", "aud", "sub"]}
    try:
        claims = jwt.decode(token, key, **arguments)
    except jwterrors.ExpiredSignatureError:
        raise TokenRejected("token expired") from None
    except jwterrors.ImmatureSignatureError as error:
        claim = "iat" if "iat" in str(error) else "nbf"
        raise TokenRejected(f"token not yet valid ({claim} is in the future)") from None
    except jwterrors.InvalidAudienceError:
        raise TokenRejected("token is for another audience (aud)") from None
    except jwterrors.InvalidIssuerError:
        raise TokenRejected("token is from another issuer (iss)") from None
    except jwterrors.MissingRequiredClaimError as error:
        raise TokenRejected(f"token has no {error.claim} claim") from None
    except jwterrors.InvalidSignatureError:
        raise TokenRejected("bad signature") from None
    except jwterrors.InvalidAlgorithmError as error:
        raise TokenRejected(f"algorithm refused: {error}") from None
    except jwterrors.DecodeError as error:
        raise TokenRejected(f"malformed token: {error}") from None
    except jwterrors.PyJWTError as error:
        raise TokenRejected(f"invalid token: {error}") from None
    if not isinstance(claims, dict):
        raise TokenRejected("malformed token: its claims are not a JSON object")
    return claims


class _Cache:
    """Verified tokens' users (by the token's SHA-256) until their exp, at most `size` of them:
    when full, the expired go first, then the oldest."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[bytes, tuple[User, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes, now: float) -> User | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            user, exp = entry
            if now >= exp:
                del self._entries[digest]
                return None
            return user

    def put(self, digest: bytes, user: User, exp: float, now: float) -> None:
        if self._size <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._size:
                for old in [d for d, (_, e) in self._entries.items() if now >= e]:
                    del self._entries[old]
            while len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[digest] = (user, exp)
