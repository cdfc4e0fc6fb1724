"""API keys: who may do what, checked before any view runs.

The keys themselves (format, hashing, making and checking one, the bind check) are the core's
thingstash.core.keys; this is the Flask hook.

Scopes nest: `read` (GET, HEAD, listings, watches) < `write` (also PUT, PATCH, POST, DELETE) <
`admin` (also /_keys and /_metrics). A key's prefix is a plain string prefix of the paths it may
touch ("sensors/" allows "sensors/a" and "sensors/b/c"); a folder above the prefix may be listed
or watched, showing only what lies under the prefix (see `can_read`).

Open and closed: a store is open (every request may do everything) only while it has never
had a key. The first key closes it for good: revoking the last key leaves it closed (a marker
in the store, see store/layout.py) until an operator runs `thingstash keys reopen` on the store.
A server bound to a non-loopback address without --public never serves an open store, even
after such a reopen while it runs. On an open store keys are made only on the command line:
POST /_keys there is refused, since whoever minted the first key would lock everyone else out.

Cost on the hot path: a request with a key pays one HGET, so revoking a key takes effect on the
very next request. A request without a key must know whether the store is closed; that answer
is kept for KEY_PRESENCE_SECONDS per process, so an open store pays no Redis round trip for
auth. The price: the first key created closes an open store up to that long later in processes
that did not do it. Open watch streams check their key again as they go (`still_allowed`).

Users and rules (API.md, "Users and rules"): a request with a user's ID token, or with no
credential on a store that has a rules document, is judged by the rules at the doors
(rulesguard.py), as is an admin acting as a user (`?auth_variable_override=`); `_check` says who.
Whether the store has a rules document is the app's RulesBook's (firebase/rules.py), which asks
the store at most every RULES_PRESENCE_SECONDS per process, so a store without rules pays a
round trip for them that often, not on every request, here or in the fast path; a deploy
answers only once every process has asked again.

A refusal (401, 403) is raised only after the rate limiter has counted the request
(`init_enforcement`), so key guessing and unauthenticated floods are throttled like the rest.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from thingstash.core import documents
from thingstash.core.config import Settings
from thingstash.core.documents import BadDocument
from thingstash.core.keys import SCOPES, is_loopback, verify
from thingstash.core.store import Keys, Store
from thingstash.firebase.rules import CHECK_SECONDS, RulesBook
from thingstash.users.tokens import ProviderUnavailable, TokenRejected
from thingstash.web import accesslog, users
from thingstash.web.context import settings, store
from thingstash.web.errors import Problem

KEY_PRESENCE_SECONDS = 1.0
RULES_PRESENCE_SECONDS = CHECK_SECONDS
RULES_EXTENSION = "thingstash.rules_presence"
LAST_USED_EVERY_SECONDS = 60
_READ_METHODS = frozenset({"GET", "HEAD"})
_CHALLENGE = 'Bearer realm="thingstash"'
# Service endpoints that write things named in their body (POST /_import): they need a write
# key here, and the view checks each path against the key's prefix (may_write).
_EACH_PATH_CHECKED = frozenset({"_import"})


@dataclass(frozen=True, slots=True)
class Access:
    """What the current request may do: the key's id (None without a key), scope, prefix."""

    key_id: str | None
    scope: str
    prefix: str
    digest: str = ""  # the key's sha256, to tell it from a later key with its id

    def allows(self, scope: str) -> bool:
        return SCOPES.index(self.scope) >= SCOPES.index(scope)


OPEN = Access(None, "admin", "")
ANONYMOUS_READ = Access(None, "read", "")
# A refused request between `_identify` and `_enforce` (the rate limiter) is nobody: no path
# starts with NUL.
NOBODY = Access(None, "read", "\0")


# -- per request --------------------------------------------------------------------------------


class _KeyPresence:
    """Whether any key exists, remembered briefly per process (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._present = False
        self._used: dict[str, float] = {}
        self._valid: dict[str, tuple[float, bool]] = {}

    def present(self, store: Keys) -> bool:
        """Whether the store is closed (has, or has had, a key)."""
        now = time.monotonic()
        if now - self._checked_at > KEY_PRESENCE_SECONDS:
            present = store.is_closed()
            with self._lock:
                self._present, self._checked_at = present, now
        return self._present

    def key_valid(self, store: Keys, key_id: str, key_digest: str) -> bool:
        """Whether a key still exists, asked of the store at most every KEY_PRESENCE_SECONDS
        per key and process: a thousand open streams of one key cost one HGET a second."""
        now = time.monotonic()
        with self._lock:
            checked_at, valid = self._valid.get(key_id, (float("-inf"), False))
        if now - checked_at > KEY_PRESENCE_SECONDS:
            record = store.get_key(key_id)
            valid = record is not None and hmac.compare_digest(record.digest, key_digest)
            with self._lock:
                self._valid[key_id] = (now, valid)
                if len(self._valid) > 10_000:  # ids of keys long gone
                    del self._valid[next(iter(self._valid))]
        return valid

    def forget(self) -> None:
        self._checked_at = float("-inf")
        with self._lock:
            self._valid.clear()

    def touch_due(self, key_id: str) -> bool:
        """True at most once a minute per key and process: last-used is kept that coarsely so
        that a request does not pay a second round trip for it."""
        now = time.monotonic()
        with self._lock:
            if now - self._used.get(key_id, float("-inf")) < LAST_USED_EVERY_SECONDS:
                return False
            self._used[key_id] = now
            return True


class RulesPresence:
    """Whether the store has a rules document: the app's RulesBook (firebase/rules.py) knows,
    asking the store at most every RULES_PRESENCE_SECONDS per process, so a store without
    rules pays one round trip for them that often, not one a request; a deploy answers only
    once every process has asked again."""

    def __init__(self, app: Flask, the_store: Store) -> None:
        self._app = app
        self._store = the_store

    def _book(self) -> RulesBook:
        book: RulesBook = self._app.extensions["thingstash.rules"]
        return book

    def __call__(self) -> bool:
        return self._book().current(self._store) is not None

    def forget(self) -> None:
        self._book().forget()


def rules_presence(app: Flask | None = None) -> RulesPresence:
    """The app's RulesPresence (made by `install`)."""
    found: RulesPresence = (app or current_app).extensions[RULES_EXTENSION]
    return found


def has_rules() -> bool:
    """Whether the store has a rules document (as this process last learned: RulesPresence)."""
    return rules_presence()()


def _presence() -> _KeyPresence:
    presence: _KeyPresence = current_app.extensions["thingstash.keys"]
    return presence


def key_created() -> None:
    """This process made or revoked a key: don't wait for the cache to notice."""
    _presence().forget()


def store_is_open() -> bool:
    """Whether a request without a key may do everything: the store never had a key, and the
    server is on loopback or was started with --public (checked on every request, so a store
    reopened while a public server runs is not served open)."""
    return _open(settings(), _presence(), store())


def _open(config: Settings, presence: _KeyPresence, store: Keys) -> bool:
    if not config.public and not is_loopback(config.host):
        return False
    return not presence.present(store)


def open_check(app: Flask, config: Settings, the_store: Keys) -> Callable[[], bool]:
    """store_is_open for `app`, callable outside a request (the fast path asks it on every
    request: the address part, fixed for the process, is decided here once)."""
    return _open_check(config, app.extensions["thingstash.keys"], the_store)


def _open_check(config: Settings, presence: _KeyPresence, the_store: Keys) -> Callable[[], bool]:
    if not config.public and not is_loopback(config.host):
        return lambda: False
    return lambda: not presence.present(the_store)


def still_allowed() -> Callable[[], bool]:
    """For a long-running response (a watch stream), made during its request: a check that the
    request's access still holds, callable after the request. Its key must still exist; a
    keyless request on an open store loses its access when the store closes."""
    access, config, presence, the_store = current(), settings(), _presence(), store()
    if access.key_id is not None:
        key_id, key_digest = access.key_id, access.digest
        return lambda: presence.key_valid(the_store, key_id, key_digest)
    if access is OPEN:
        return _open_check(config, presence, the_store)
    return lambda: True  # anonymous read: a setting of the process, it does not change


def _unauthorized(detail: str, bad_key: bool) -> Problem:
    challenge = _CHALLENGE + (', error="invalid_token"' if bad_key else "")
    return Problem(401, "unauthorized", detail, {"WWW-Authenticate": challenge})


def _forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", detail)


def _required() -> tuple[str, str | None] | None:
    """(scope needed, thing or folder path or None) for this request; None if it is open."""
    if request.method == "OPTIONS":
        return None  # CORS preflight and Allow: carry no data
    path = request.path[1:]
    if path.startswith("_"):
        if path.partition("/")[0] in ("_keys", "_indexes", "_rules") or path == "_metrics":
            return "admin", None
        if path in _EACH_PATH_CHECKED and request.method == "POST":
            return "write", None
        return None  # /_health, /_docs, /_ui, ...: no data of their own
    return ("read" if request.method in _READ_METHODS else "write"), path


def current() -> Access:
    """What this request may do (OPEN outside a request that went through the check)."""
    access: Access = g.get("thingstash_access", OPEN)
    return access


def can_read(path: str) -> bool:
    """May the current request see `path` (a thing, or a folder ending in /) in a listing or a
    watch? Folders above the key's prefix are visible, since what they lead to is."""
    prefix = current().prefix
    return path.startswith(prefix) or (path.endswith("/") or path == "") and prefix.startswith(path)


def may_write(path: str) -> bool:
    """May the current request write the thing at `path`? For endpoints that name the things
    they write in their body (POST /_import); the scope was checked before the view ran."""
    access = current()
    return access.allows("write") and _within(access.prefix, path, "write")


def _within(prefix: str, path: str, scope: str) -> bool:
    if path.startswith(prefix):
        return True
    # A folder above the prefix may be read: its listing and watch are filtered by can_read.
    is_folder = path == "" or path.endswith("/")
    return scope == "read" and is_folder and prefix.startswith(path)


def _check() -> None:
    """Who asks, and whether the rules judge it (web/rulesguard.py judges at the doors):
    - no Authorization: judged as signed out where the store has a rules document and the
      request reaches data (a path, or /_import's lines); else as before (open store:
      everything; anonymous reads; closed store: 401);
    - `Bearer <JWT>` (not a `tsk_` key): the user's ID token, verified (401 saying why when
      bad) and judged as that user;
    - `Bearer owner` on an open store served on loopback: the admin (Firebase's emulator
      convention; never on a --public server, where anyone could send it);
    - an API key: its scope and prefix, not judged;
    an admin (the owner, or an admin key for the whole store) adding
    `?auth_variable_override=<JSON>` is judged as that auth."""
    need = _required()
    if need is None:
        return
    scope, path = need
    header = request.environ.get("HTTP_AUTHORIZATION")
    reaches_data = path is not None or request.path[1:] in _EACH_PATH_CHECKED
    if header is None:
        if (reaches_data or scope == "admin") and has_rules():
            if not reaches_data:  # the rules, keys, indexes, metrics: the admin's alone
                raise _unauthorized("this store has rules: managing it needs the admin", False)
            users.judge_as(users.Judged(None))
            g.thingstash_access = JUDGED
            return
        g.thingstash_access = check_keyless(scope, path)
        return
    kind, _, key = header.partition(" ")
    key = key.strip()
    if kind.lower() != "bearer" or not key:
        raise _unauthorized("send the API key as Authorization: Bearer KEY", True)
    if users.is_token(key) and reaches_data and store_is_open() and not has_rules():
        g.thingstash_access = OPEN  # an open store with no rules: anyone, as before
        return
    if users.is_token(key):
        g.thingstash_access = NOBODY
        try:
            user_auth = users.verify(key)
        except ProviderUnavailable as unavailable:
            raise Problem(
                503, "identity provider unavailable", unavailable.reason, {"Retry-After": "5"}
            ) from None
        except TokenRejected as rejected:
            raise _unauthorized(f"the ID token is not valid: {rejected.reason}", True) from None
        if not reaches_data:
            raise _forbidden("a user's ID token reaches things only; this needs an API key")
        users.judge_as(users.Judged(user_auth))
        g.thingstash_access = JUDGED
        return
    if key == OWNER and is_loopback(settings().host) and store_is_open():
        access = OPEN
    else:
        access = check_key(key, scope, path)
    g.thingstash_access = access
    if access.allows("admin") and not access.prefix and reaches_data:
        acting = _override()
        if acting is not _ADMIN:
            users.judge_as(users.Judged(acting))


# Firebase's emulator convention: on an open store, this bearer token is the admin.
OWNER = "owner"
# A request the rules judge: as far as keys go it may try anything; the rules decide.
JUDGED = Access(None, "write", "")
_ADMIN: object = object()


def _override() -> object:
    """`?auth_variable_override=<JSON>`: the auth an admin acts as (firebase-admin's
    databaseAuthVariableOverride: an object, or null for signed out); absent: the admin."""
    raw = request.args.get("auth_variable_override")
    if raw is None:
        return _ADMIN
    bad = Problem(
        400, "bad auth_variable_override", "auth_variable_override must be JSON: an object or null"
    )
    try:
        value = documents.loads(raw.encode("utf-8", "surrogatepass"))
    except (BadDocument, UnicodeEncodeError):
        raise bad from None
    if value is not None and not isinstance(value, dict):
        raise bad
    return value


def check_key(key: str, scope: str, path: str | None, folders_above: bool = True) -> Access:
    """The access `key` gives a request that needs `scope` on `path` (a thing or a folder
    path; None for the service's own endpoints); 401 or 403 Problem when it gives none.
    `folders_above` False: a folder above the key's prefix is refused too (the Firebase face,
    whose reads of a location take in everything below it)."""
    record = verify(store(), key)
    if record is None:
        raise _unauthorized("the API key is not valid (wrong, or revoked)", True)
    access = Access(record.id, record.scope, record.prefix, record.digest)
    g.thingstash_access = access
    request.environ[accesslog.KEY_ID] = record.id  # the access line names the key
    if _presence().touch_due(record.id):
        store().touch_key(record.id, int(time.time()))
    if not access.allows(scope):
        raise _forbidden(f"this key's scope is {record.scope}; this request needs {scope}")
    if path is None:
        if request.path[1:] in _EACH_PATH_CHECKED:
            return access  # the paths are in the body: the view asks may_write() for each
        if record.prefix:
            raise _forbidden("managing the service needs an admin key for the whole store")
        return access
    allowed = (
        _within(record.prefix, path, scope) if folders_above else path.startswith(record.prefix)
    )
    if not allowed:
        raise _forbidden(f"this key is limited to paths starting with {record.prefix!r}")
    return access


def check_keyless(scope: str, path: str | None) -> Access:
    """The access of a request without a key (an open store, or anonymous reads); 401 else."""
    if settings().anonymous_read and scope == "read" and path is not None:
        return ANONYMOUS_READ
    if store_is_open():
        return OPEN
    raise _unauthorized("this store needs an API key: send Authorization: Bearer KEY", False)


def install(app: Flask) -> None:
    """What the checks above need on an app that does not run `_identify` (the Firebase face)."""
    app.extensions["thingstash.keys"] = _KeyPresence()
    app.extensions[RULES_EXTENSION] = RulesPresence(app, app.extensions["thingstash.store"])


def _identify_with(check: Callable[[], None]) -> None:
    """Find who asks; a refusal waits in `g` for `_enforce`, after the rate limiter counted it."""
    try:
        check()
    except Problem as refusal:
        g.thingstash_refusal = refusal
        g.setdefault("thingstash_access", NOBODY)


def _identify() -> None:
    # A hook of its own (not a closure): the fast path knows it by name (fastpath.KNOWN_HOOKS).
    _identify_with(_check)


def _enforce() -> None:
    refusal = g.pop("thingstash_refusal", None)
    if refusal is not None:
        raise refusal


def init_app(app: Flask, check: Callable[[], None] | None = None) -> None:
    """Who is asking (before the rate limiter, which counts per key): `check` (this face's
    `_check` unless given; the Firebase face has its own) sets the request's Access in `g` or
    raises the Problem that `init_enforcement`'s hook raises later."""
    install(app)
    if check is None:
        app.before_request(_identify)
    else:
        custom = check
        app.before_request(lambda: _identify_with(custom))


def init_enforcement(app: Flask) -> None:
    """Refuse what `_identify` found not allowed (after the rate limiter)."""
    app.before_request(_enforce)
