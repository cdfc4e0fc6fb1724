"""The Firebase face's key check: which key a request brings (`?auth=` or Bearer), what it may
do where (web/auth.py decides, as for the native face), and the one permission the Firebase
layer's writes ask about: whose things' lifetime a write may set (`Lifetime.renews`)."""

from __future__ import annotations

from flask import g, request

from thingstash.core import documents
from thingstash.firebase import tree
from thingstash.firebase.errors import PermissionDenied
from thingstash.web import auth
from thingstash.web.context import settings
from thingstash.web.firebase.protocol import arg


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


def authorize(scope: str, path: str | None) -> auth.Access:
    """Who may: an open store lets any token (or none) do everything; once keys exist, a key
    as `auth=` or Bearer, with its scope and prefix (a prefixed key reaches locations at or
    below its prefix). Refused: 401 "Permission denied"."""
    if auth.store_is_open():
        access = auth.OPEN
    else:
        key = _key()
        if key is None:
            access = auth.check_keyless(scope, path)
        else:
            access = auth.check_key(key, scope, path, folders_above=False)
    # Kept for the request, as the native face's check does: a stream asks it again later
    # (auth.still_allowed), and ends when the key is revoked.
    g.thingstash_access = access
    return access


def lifetime() -> tree.Lifetime:
    """The lifetime of the things this write writes: `?ttl=` or the default. A thing lying
    outside the key's prefix (a plain string prefix of paths, as auth checks it) keeps its own,
    to the second: a key limited to `users/ada` may change its place inside the thing `users`,
    but not when `users` ends; and a write that asked for a lifetime itself (`?ttl=`) is
    refused there (PermissionDenied)."""
    config = settings()
    given = arg("ttl")
    seconds = documents.resolve_ttl(None, given, config.default_ttl, config.max_ttl)
    prefix = auth.current().prefix

    def renews(path: str) -> bool:
        if path.startswith(prefix):
            return True
        if given is not None:
            raise PermissionDenied(
                f"Permission denied: this key may not set the lifetime of {path!r}, which lies "
                f"outside its prefix {prefix!r}"
            )
        return False

    return tree.Lifetime(seconds, renews)
