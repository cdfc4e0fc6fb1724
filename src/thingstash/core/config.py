"""Typed settings, every one read and checked once from the environment (which `thingstash serve`
fills from its flags); a bad value is a ConfigError naming its variable.

The WSGI workers are separate processes started by the server, so the environment is the one
channel every worker shares: `serve` writes its resolved flags there before the workers start.
Core: stdlib only (the rate limit's syntax is checked by the `limits` library, loaded only then).
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TTL = 31_104_000  # the original prototype's "one year": 360 days
DEFAULT_MAX_TTL = 311_040_000
DEFAULT_MAX_BODY = 1024 * 1024
# Seconds a request body may take to arrive: 1 MiB at ~20 KB/s, a slow mobile link.
DEFAULT_BODY_TIMEOUT = 60


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset
    narrow), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity outside Linux
        return os.cpu_count() or 1


# Granian worker processes: one per core, at least 2 (serve/server.py says why), and on the async
# front one more: a worker answers on one event loop, idle while Redis answers (serve/asgi.py).
DEFAULT_WORKERS_THREADS = max(2, available_cores())
DEFAULT_WORKERS = DEFAULT_WORKERS_THREADS + 1
# The front: "async" (ASGI: an event loop per worker, streams as coroutines: serve/asgi.py) or
# "threads" (WSGI: granian's blocking threads, a thread per request and per open stream).
FRONTS = ("async", "threads")
# Requests a worker works on at once; more wait their turn in arrival order (web/admission.py).
DEFAULT_THREADS = 8
# Of those, how many may compute a query without an index at once (web/admission.py).
DEFAULT_COSTLY_QUERIES = 2
# A thing is at most THINGSTASH_MAX_BODY bytes of JSON, checked on every write. One stored before
# that held for every write (a PATCH or an increment could grow it past) still restores: a line
# of POST /_import sent alone may hold a thing of up to this many times the limit.
RESTORE_FACTOR = 4
# What an export line holds beside its thing: {"path": ..., "thing": ..., "ttl": ...} (a path is
# at most MAX_PATH_BYTES, twice that escaped).
IMPORT_LINE_ENVELOPE = 4096
MAX_DEPTH = 64
MAX_PATH_BYTES = 1024
# Integers in JSON: Python's own guard against quadratic int parsing (CVE-2020-10735), stated as
# ours, so a client gets a clear 400 rather than whatever the interpreter's setting says.
MAX_INT_DIGITS = 4300
# A listing page with values ends early, with a `next` cursor, once its things' JSON passes this
# (one thing is always listed, whatever its size): the memory one page costs stays bounded.
MAX_PAGE_VALUE_BYTES = 4 * 1024 * 1024
# A Firebase read takes in at most this much of things' JSON, else Firebase's "Data requested
# exceeds the maximum size" 400 (Firebase's own cap is 256 MB; a worker holds it parsed).
DEFAULT_FIREBASE_MAX_READ = 32 * 1024 * 1024
# ... and walks at most this many sub-folders (each a listing in Redis), past it the same 400.
DEFAULT_FIREBASE_MAX_FOLDERS = 10_000
# Seconds a connection may take to send a request's headers, and stay open idle between two
# requests (granian's header_read_timeout covers both): then it is closed.
DEFAULT_HEADER_TIMEOUT = 15
# Bodies still arriving (each holds a reader thread, web/bodies.py), per worker and per client.
DEFAULT_MAX_BODIES = 256
DEFAULT_MAX_BODIES_PER_CLIENT = 64
DEFAULT_MAX_STREAMS_PER_CLIENT = 64


def open_files_limit() -> int:
    """How many files (connections) a process may open: the hard limit, as `serve` raises the
    soft one to it (serve/server.py)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if hard == resource.RLIM_INFINITY else max(soft, hard)


# Open streams a worker takes. On the async front a stream is a coroutine and a connection (a
# file): half the files a worker may open, the rest left to ordinary requests. On threads each
# also holds a thread: an eighth of them, from 64 to 4096.
DEFAULT_MAX_STREAMS_ASYNC = max(64, open_files_limit() // 2)
DEFAULT_MAX_STREAMS = min(4096, max(64, open_files_limit() // 8))

# THINGSTASH_FIREBASE_PROJECT=<id>: Firebase Authentication's ID tokens, signed by these keys.
FIREBASE_JWKS_URL = (
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
)
FIREBASE_ISSUER = "https://securetoken.google.com/"
_PROJECT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    port = _int(env, name, 0)
    if port > 65535:
        raise ConfigError(f"{name} must be a port from 1 to 65535, not {port}")
    return port


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _check_jwks_url(url: str) -> None:
    # Keys fetched over plain HTTP could be anyone's: only from this machine (tests, emulators).
    parts = urlsplit(url)
    loopback = (parts.hostname or "").lower() in _LOOPBACK_NAMES
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError(
            f"THINGSTASH_AUTH_JWKS_URL must be an https:// URL (http:// on loopback), not {url!r}"
        )


def _check_rate_limit(rate: str) -> None:
    # The grammar is the `limits` library's (flask-limiter applies it): asked here, not copied.
    from limits import parse_many

    try:
        parse_many(rate)
    except ValueError:
        raise ConfigError(
            f"THINGSTASH_RATE_LIMIT must look like 100/minute or 10/second, not {rate!r}"
        ) from None


def _auth(env: Mapping[str, str]) -> dict[str, Any]:
    """The users' settings: the three THINGSTASH_AUTH_* or THINGSTASH_FIREBASE_PROJECT."""
    jwks_url = env.get("THINGSTASH_AUTH_JWKS_URL") or None
    issuer = env.get("THINGSTASH_AUTH_ISSUER") or None
    audience = env.get("THINGSTASH_AUTH_AUDIENCE") or None
    project = env.get("THINGSTASH_FIREBASE_PROJECT") or None
    if project is not None:
        if not _PROJECT_ID.fullmatch(project):
            raise ConfigError(
                "THINGSTASH_FIREBASE_PROJECT must be a Firebase project id (lowercase letters, "
                f"digits and hyphens), not {project!r}"
            )
        if jwks_url or issuer or audience:
            raise ConfigError(
                "THINGSTASH_FIREBASE_PROJECT sets the THINGSTASH_AUTH_* settings: set one or "
                "the other"
            )
        jwks_url, issuer, audience = FIREBASE_JWKS_URL, FIREBASE_ISSUER + project, project
    return {
        "auth_jwks_url": jwks_url,
        "auth_issuer": issuer,
        "auth_audience": audience,
        "firebase_project": project,
        "auth_emulator": _flag(env, "THINGSTASH_AUTH_EMULATOR"),
    }


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    key_prefix: str = "ts"
    default_ttl: int = DEFAULT_TTL
    max_ttl: int = DEFAULT_MAX_TTL
    max_body: int = DEFAULT_MAX_BODY
    body_timeout: int = DEFAULT_BODY_TIMEOUT
    feed_retention: int = 10_000
    keepalive: float = 15.0  # seconds between SSE keep-alive comments
    public: bool = False
    anonymous_read: bool = False
    # None: the default policy (cors.py): loopback origins while the store is open, any once
    # it is closed. "*" or a comma-separated list: exactly those, whatever the store's state.
    cors_origins: str | None = None
    # The address `thingstash serve` binds: on loopback only the Host names below are answered
    # (web/hosts.py), and on any other address the store is never served open (keys.py).
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    rate_limit: str | None = None
    proxies: int = 0  # reverse proxies in front whose X-Forwarded-For is trusted (Heroku: 1)
    workers: int = DEFAULT_WORKERS
    front: str = "async"
    threads: int = DEFAULT_THREADS
    costly_queries: int = DEFAULT_COSTLY_QUERIES
    # The Firebase face's port (`serve --firebase-port`), None when it is off (docs/firebase.md).
    firebase_port: int | None = None
    firebase_max_read: int = DEFAULT_FIREBASE_MAX_READ
    firebase_max_folders: int = DEFAULT_FIREBASE_MAX_FOLDERS
    # Seconds between a quiet Firebase stream's keep-alive events (Firebase's own: 30).
    firebase_keepalive: float = 30.0
    header_timeout: int = DEFAULT_HEADER_TIMEOUT
    max_streams: int = DEFAULT_MAX_STREAMS_ASYNC
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT
    max_bodies: int = DEFAULT_MAX_BODIES
    max_bodies_per_client: int = DEFAULT_MAX_BODIES_PER_CLIENT
    # Users' ID tokens (users/tokens.py): verified against the keys at the JWKS URL, with this
    # issuer and audience; THINGSTASH_FIREBASE_PROJECT fills the three for Firebase Authentication.
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    firebase_project: str | None = None
    # Unsigned tokens taken as given, as Firebase's emulators do: `serve` refuses it off loopback.
    auth_emulator: bool = False

    def __post_init__(self) -> None:
        if not self.key_prefix or any(c in self.key_prefix for c in "{}"):
            # Braces would change the Redis Cluster hash slot of every key.
            raise ConfigError("THINGSTASH_KEY_PREFIX must be non-empty and contain no { or }")
        if self.default_ttl > self.max_ttl:
            raise ConfigError("THINGSTASH_DEFAULT_TTL must not exceed THINGSTASH_MAX_TTL")
        if self.rate_limit:
            _check_rate_limit(self.rate_limit)
        if self.front not in FRONTS:
            raise ConfigError(f"THINGSTASH_FRONT must be one of: {', '.join(FRONTS)}")
        self._check_auth()

    def _check_auth(self) -> None:
        if self.auth_jwks_url:
            _check_jwks_url(self.auth_jwks_url)
            for name, value in (
                ("THINGSTASH_AUTH_ISSUER", self.auth_issuer),
                ("THINGSTASH_AUTH_AUDIENCE", self.auth_audience),
            ):
                if not value:
                    raise ConfigError(f"{name} must be set with THINGSTASH_AUTH_JWKS_URL")
        elif self.auth_issuer or self.auth_audience:
            raise ConfigError(
                "THINGSTASH_AUTH_JWKS_URL must be set with THINGSTASH_AUTH_ISSUER and "
                "THINGSTASH_AUTH_AUDIENCE"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            redis_url=env.get("THINGSTASH_REDIS_URL")
            or env.get("REDIS_URL")
            or env.get("REDISCLOUD_URL")
            or None,
            key_prefix=env.get("THINGSTASH_KEY_PREFIX") or "ts",
            default_ttl=_int(env, "THINGSTASH_DEFAULT_TTL", DEFAULT_TTL),
            max_ttl=_int(env, "THINGSTASH_MAX_TTL", DEFAULT_MAX_TTL),
            max_body=_int(env, "THINGSTASH_MAX_BODY", DEFAULT_MAX_BODY),
            body_timeout=_int(env, "THINGSTASH_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT),
            feed_retention=_int(env, "THINGSTASH_FEED_RETENTION", 10_000, minimum=10),
            keepalive=_int(env, "THINGSTASH_KEEPALIVE", 15),
            public=_flag(env, "THINGSTASH_PUBLIC"),
            anonymous_read=_flag(env, "THINGSTASH_ANONYMOUS_READ"),
            cors_origins=env.get("THINGSTASH_CORS_ORIGINS") or None,
            host=env.get("THINGSTASH_HOST") or "127.0.0.1",
            allowed_hosts=tuple(
                name.strip().lower()
                for name in env.get("THINGSTASH_ALLOWED_HOSTS", "").split(",")
                if name.strip()
            ),
            rate_limit=env.get("THINGSTASH_RATE_LIMIT") or None,
            proxies=_int(env, "THINGSTASH_PROXIES", 0, minimum=0),
            workers=_int(
                env,
                "THINGSTASH_WORKERS",
                DEFAULT_WORKERS_THREADS
                if env.get("THINGSTASH_FRONT") == "threads"
                else DEFAULT_WORKERS,
            ),
            front=env.get("THINGSTASH_FRONT") or "async",
            threads=_int(env, "THINGSTASH_THREADS", DEFAULT_THREADS),
            costly_queries=_int(env, "THINGSTASH_COSTLY_QUERIES", DEFAULT_COSTLY_QUERIES),
            firebase_port=_port(env, "THINGSTASH_FIREBASE_PORT"),
            firebase_max_read=_int(env, "THINGSTASH_FIREBASE_MAX_READ", DEFAULT_FIREBASE_MAX_READ),
            firebase_max_folders=_int(
                env, "THINGSTASH_FIREBASE_MAX_FOLDERS", DEFAULT_FIREBASE_MAX_FOLDERS
            ),
            firebase_keepalive=_int(env, "THINGSTASH_FIREBASE_KEEPALIVE", 30),
            header_timeout=_int(env, "THINGSTASH_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT),
            max_streams=_int(
                env,
                "THINGSTASH_MAX_STREAMS",
                DEFAULT_MAX_STREAMS
                if env.get("THINGSTASH_FRONT") == "threads"
                else DEFAULT_MAX_STREAMS_ASYNC,
            ),
            max_streams_per_client=_int(
                env, "THINGSTASH_MAX_STREAMS_PER_CLIENT", DEFAULT_MAX_STREAMS_PER_CLIENT
            ),
            max_bodies=_int(env, "THINGSTASH_MAX_BODIES", DEFAULT_MAX_BODIES),
            max_bodies_per_client=_int(
                env, "THINGSTASH_MAX_BODIES_PER_CLIENT", DEFAULT_MAX_BODIES_PER_CLIENT
            ),
            **_auth(env),
        )

    @property
    def max_restored_thing(self) -> int:
        """The most bytes of JSON a thing restored by POST /_import may have."""
        return RESTORE_FACTOR * self.max_body

    @property
    def max_import_body(self) -> int:
        """The body limit of POST /_import: a line alone with the largest thing it restores
        (several lines together are held to max_body, web/imports.py)."""
        return self.max_restored_thing + IMPORT_LINE_ENVELOPE

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)
