"""Writes: `PUT|POST|PATCH|DELETE /<path>.json` as Firebase's REST API answers them: set (with
`if-match`), push (a new push id), update (multi-path PATCH) and delete, each with the lifetime
the face's key check gives (access.py), each judged by the rules in the step that writes
(guard.write). The tree's writes are firebase/tree.py's."""

from __future__ import annotations

from flask import Response, request

from thingstash.core.pushids import push_id
from thingstash.firebase import mapping, tree
from thingstash.firebase.errors import BadRequest, NotAllowed
from thingstash.firebase.mapping import Location
from thingstash.web.context import settings
from thingstash.web.firebase import guard
from thingstash.web.firebase.access import lifetime
from thingstash.web.firebase.protocol import METHODS, answer, body, if_match, wants_etag


def write(method: str, location: Location) -> Response:
    """A write `method` (PUT, POST, PATCH or DELETE) at `location`."""
    if request.headers.get("if-match") is not None and method not in ("PUT", "DELETE"):
        raise BadRequest("if-match is supported with PUT and DELETE only")
    if method == "PUT":
        return _put(location)
    if method == "DELETE":
        life, expected, limit = lifetime(location), if_match(), settings().max_body
        written = guard.write(
            [(location, None)],
            lambda store: tree.set_value(store, location, None, life, expected, limit),
        )
        return answer(written, etag=expected is not None)
    if method == "POST":
        name = push_id()
        value = mapping.normalize(body())
        life, limit = lifetime(location), settings().max_body
        guard.write(
            [((*location, name), value)],
            lambda store: tree.push_value(store, location, name, value, life, limit),
        )
        return answer({"name": name})
    if method != "PATCH":
        raise NotAllowed(f"{method} is not one of {', '.join(METHODS)}")
    patch = body()
    life, limit = lifetime(location), settings().max_body
    written = guard.write(
        tree.plan_update(location, patch),
        lambda store: tree.update_values(store, location, patch, life, limit),
    )
    return answer(written)


def _put(location: Location) -> Response:
    value = mapping.normalize(body())
    life, expected, limit = lifetime(location), if_match(), settings().max_body
    written = guard.write(
        [(location, value)],
        lambda store: tree.set_value(store, location, value, life, expected, limit),
    )
    return answer(written, etag=expected is not None or wants_etag())
