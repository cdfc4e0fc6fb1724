"""The Firebase face's check of who asks: which credential a request brings (`?auth=` or
Bearer): an API key (what it may do where: web/auth.py decides, as for the native face), the
emulator's `owner` on an open store (the admin), a user's ID token (users/ verifies it), or none;
and whom the rules judge (guard.py: a user, nobody, or an admin acting as a user with
`?auth_variable_override=`). Also the one permission the Firebase layer's writes ask about:
whose things' lifetime a write may set (`Lifetime.renews`)."""

from __future__ import annotations

from typing import Any

from flask import g, request

from thingstash.core import documents
from thingstash.core.documents import BadDocument
from thingstash.firebase import mapping, tree
from thingstash.firebase.errors import BadRequest, PermissionDenied
from thingstash.firebase.mapping import Location
from thingstash.users.tokens import TokenRejected
from thingstash.web import auth, users
from thingstash.web.context import settings
from thingstash.web.errors import Problem
from thingstash.web.firebase.protocol import arg

# Firebase's emulator convention: on an open store, this token is the admin.
OWNER = "owner"
# A request the rules judge: as far as keys go it may try anything; the rules decide.
JUDGED = auth.Access(None, "write", "")


def _key() -> str | None:
    """The key a request brings: `?auth=`, else `Authorization: Bearer`."""
    given = arg("auth")
    if given:
        return given
    header: str = request.environ.get("HTTP_AUTHORIZATION", "")
    kind, _, token = header.partition(" ")
    if kind.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _override() -> Any:
    """`?auth_variable_override=<JSON>`: the auth an admin acts as (firebase-admin's
    databaseAuthVariableOverride); absent: the admin itself."""
    raw = arg("auth_variable_override")
    if raw is None:
        return _ADMIN
    try:
        value = documents.loads(raw.encode("utf-8", "surrogatepass"))
    except (BadDocument, UnicodeEncodeError):
        raise BadRequest("auth_variable_override must be JSON: an object or null") from None
    if value is not None and not isinstance(value, dict):
        raise BadRequest("auth_variable_override must be JSON: an object or null")
    return value


_ADMIN: Any = object()


def authorize(scope: str, path: str | None) -> auth.Access:
    """Who may, and whom the rules judge (`g.thingstash_judged`, guard.py):
    - no credential: the rules judge a signed-out user (allowed as before where the store has
      no rules: an open store lets it do everything, a closed one refuses);
    - a user's ID token: verified (else 401 saying why), then judged by the rules as that user;
    - `owner` on an open store, or an API key (its scope and prefix, a prefixed key reaching
      locations at or below its prefix): not judged, unless an admin adds
      `?auth_variable_override=` to act as a user;
    - on an open store with no rules document, any other credential, as before: everything.
    Refused: 401 "Permission denied"."""
    credential = _key()
    is_open = auth.store_is_open()
    judged: users.Judged | None = None
    if credential is None:
        judged = users.Judged(None)
        access = auth.OPEN if is_open else _keyless(scope, path)
    elif users.is_token(credential) and is_open and users.rules_in_force() is None:
        access = auth.OPEN  # no rules on an open store: as before, anyone does everything
    elif users.is_token(credential):
        try:
            user = users.verify(credential)
        except TokenRejected as rejected:
            raise PermissionDenied(f"Permission denied: {rejected.reason}") from None
        judged = users.Judged(user)
        access = auth.OPEN if is_open else JUDGED
    elif is_open:
        access = auth.OPEN
        if credential != OWNER and users.rules_in_force() is not None:
            raise PermissionDenied("Permission denied: the token is neither a key nor an ID token")
    else:
        access = auth.check_key(credential, scope, path, folders_above=False)
    if judged is None and access.allows("admin") and not access.prefix:
        acting = _override()
        if acting is not _ADMIN:
            judged = users.Judged(acting)
    if judged is not None:
        users.judge_as(judged)
    # Kept for the request, as the native face's check does: a stream asks it again later
    # (auth.still_allowed), and ends when the key is revoked.
    g.thingstash_access = access
    return access


def _keyless(scope: str, path: str | None) -> auth.Access:
    """A request with no credential on a closed store: anonymous reads where allowed, else the
    rules judge it (refused where there are none)."""
    try:
        return auth.check_keyless(scope, path)
    except Problem:
        if users.rules_in_force() is None:
            raise
        return JUDGED


def lifetime(location: Location) -> tree.Lifetime:
    """The lifetime of the things a write at `location` writes: `?ttl=` or the default. A thing
    lying outside the key's prefix (a plain string prefix of paths, as auth checks it) keeps its
    own, to the second: a key limited to `users/ada` may change its place inside the thing
    `users`, but not when `users` ends; and a write that asked for a lifetime itself (`?ttl=`)
    is refused there (PermissionDenied). For a request the rules judge, the same holds of the
    things above `location`: the rules let it write there, not end its neighbours' data."""
    config = settings()
    given = arg("ttl")
    seconds = documents.resolve_ttl(None, given, config.default_ttl, config.max_ttl)
    prefix = auth.current().prefix
    if users.judged() is not None and location and users.rules_in_force() is not None:
        own = mapping.thing_path(location)
        prefix = own + "/"
        mine = own
    else:
        mine = None

    def renews(path: str) -> bool:
        if path.startswith(prefix) or path == mine:
            return True
        if given is not None:
            raise PermissionDenied(
                f"Permission denied: this request may not set the lifetime of {path!r}, which "
                f"lies outside {prefix!r}"
            )
        return False

    return tree.Lifetime(seconds, renews)
