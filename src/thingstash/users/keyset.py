"""An identity provider's public keys (its JSON Web Key Set), fetched from its JWKS URL and cached
for as long as the response's Cache-Control allows.

Fetched lazily (never at import or construction), with httpx; parsed by PyJWT's PyJWKSet, which
skips keys it cannot use. The last good set is kept while the provider is unreachable or answers
garbage: a provider's outage must not log every user out. A token signed by a key id the set does
not hold may mean the provider rotated its keys, so the set is then fetched again, at most once
every few seconds (a flood of made-up key ids must not become a flood of fetches). Shared by the
threads of a worker: one thread fetches while the others wait for its answer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKSetError, PyJWTError

# A response without max-age is kept this long; any max-age is held between the two bounds (a
# provider saying "no-cache" is still not asked on every token, nor one saying "a year" trusted).
DEFAULT_MAX_AGE = 300.0
MIN_MAX_AGE = 60.0
MAX_MAX_AGE = 86_400.0
# Seconds between two fetches made for an unknown key id, or retried after a failed fetch.
REFETCH_INTERVAL = 5.0
FETCH_TIMEOUT = 5.0
# A key set larger than this is garbage, not keys.
MAX_JWKS_BYTES = 1024 * 1024
PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


class KeysUnavailable(Exception):
    """The provider's keys were never fetched: it is unreachable or answers garbage."""


class UnknownKey(Exception):
    """The key set (even fetched afresh) holds no key with this id."""


def max_age(cache_control: str | None) -> float:
    """Seconds a JWKS response may be kept, from its Cache-Control header, within the bounds."""
    if not cache_control:
        return DEFAULT_MAX_AGE
    if _NO_CACHE.search(cache_control):
        return MIN_MAX_AGE
    found = _MAX_AGE.search(cache_control)
    seconds = float(found.group(1)) if found else DEFAULT_MAX_AGE
    return min(MAX_MAX_AGE, max(MIN_MAX_AGE, seconds))


@dataclass(frozen=True)
class _Fetched:
    keys: dict[str, PyJWK] = field(default_factory=dict)
    expires: float = 0.0  # on the monotonic clock


class KeySet:
    """The keys at `url`, by key id; `key(kid)` is what token verification asks."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = FETCH_TIMEOUT,
        refetch_interval: float = REFETCH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._fetched: _Fetched | None = None  # replaced whole, so read without the lock
        self._last_attempt: float | None = None
        self._last_error = ""
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> PyJWK:
        """The key with id `kid` (None: the set's only key, for providers that name none).

        Raises KeysUnavailable when no key set was ever fetched, UnknownKey when the set holds
        no such key.
        """
        fetched = self._fetched
        known = fetched is not None and _pick(fetched, kid) is not None
        if fetched is not None and known and self._clock() >= fetched.expires:
            # Stale: one thread fetches; the others go on with the stale keys meanwhile, rather
            # than all wait on a provider that may be slow to answer (or never).
            if self._lock.acquire(blocking=False):
                try:
                    fetched = self._refresh(kid)
                finally:
                    self._lock.release()
        elif not known:
            with self._lock:
                fetched = self._refresh(kid)
        assert fetched is not None
        found = _pick(fetched, kid)
        if found is None:
            raise UnknownKey(kid)
        return found

    def _refresh(self, kid: str | None) -> _Fetched:
        """The key set, fetched again unless it is fresh and holds `kid` (another thread may
        have fetched it while this one waited) or a fetch was tried under REFETCH_INTERVAL ago.
        Called with the lock held."""
        fetched = self._fetched
        now = self._clock()
        fresh = fetched is not None and now < fetched.expires
        if fresh and fetched is not None and _pick(fetched, kid) is not None:
            return fetched
        recently = (
            self._last_attempt is not None and now - self._last_attempt < self._refetch_interval
        )
        if not recently:
            self._last_attempt = now
            try:
                fetched = self._fetch()
                self._fetched = fetched
            except _FetchFailed as failed:
                self._last_error = str(failed)
        if fetched is None:
            raise KeysUnavailable(
                f"the provider's keys could not be fetched from {self.url}: {self._last_error}"
            )
        return fetched

    def _fetch(self) -> _Fetched:
        try:
            response = httpx.get(self.url, timeout=self._timeout, follow_redirects=True)
        except httpx.HTTPError as error:
            raise _FetchFailed(f"{type(error).__name__}: {error}") from None
        if response.status_code != 200:
            raise _FetchFailed(f"HTTP {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise _FetchFailed("the key set is too large")
        try:
            document = response.json()
            if not isinstance(document, dict):
                raise _FetchFailed("the key set is not a JSON object")
            parsed = PyJWKSet.from_dict(document)
        except (ValueError, PyJWKSetError, PyJWTError) as error:
            raise _FetchFailed(f"the key set does not parse: {error}") from None
        # Public keys only: a shared secret ("oct") published in a key set is no one's proof.
        usable = [key for key in parsed.keys if key.key_type in PUBLIC_KEY_TYPES]
        if not usable:
            raise _FetchFailed("the key set holds no public keys")
        keys = {key.key_id: key for key in usable if key.key_id is not None}
        if len(usable) == 1 and usable[0].key_id is None:
            keys[""] = usable[0]  # the only key, unnamed
        expires = self._clock() + max_age(response.headers.get("cache-control"))
        return _Fetched(keys, expires)


class _FetchFailed(Exception):
    pass


def _pick(fetched: _Fetched, kid: str | None) -> PyJWK | None:
    if kid is None:
        if len(fetched.keys) == 1:
            return next(iter(fetched.keys.values()))
        return None
    return fetched.keys.get(kid)
