"""Folders: listings of what is directly inside a folder, and recursive deletes. (What a GET of a
folder answers, a listing, a query or a stream, is decided in one place: things.read.)"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

import orjson
from flask import Response
from orjson import Fragment

from thingstash.core.config import MAX_PAGE_VALUE_BYTES
from thingstash.core.model import Page
from thingstash.core.paths import Path
from thingstash.core.store import Store
from thingstash.web import auth, queryargs, rulesguard
from thingstash.web.context import store
from thingstash.web.errors import Problem

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,2800}")


def _limit() -> int:
    return queryargs.whole_number("limit", 1, MAX_LIMIT, DEFAULT_LIMIT)


def encode_cursor(name: str) -> str:
    """The cursor is the last name listed, base64url without padding: opaque to clients, and
    a listing resumes after it even if that name has been deleted meanwhile."""
    return base64.urlsafe_b64encode(name.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_cursor(raw: str | None) -> str | None:
    """The name a `cursor` parameter resumes after (None when absent or empty); 400 when it is
    not a cursor this service gave."""
    if raw is None or raw == "":
        return None
    bad = Problem(400, "bad cursor", "cursor must be the `next` value of an earlier listing")
    if not _CURSOR.fullmatch(raw):
        raise bad
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise bad from None


def parse_values(raw: str | None) -> bool:
    """The `values` parameter; 400 unless absent, true or false."""
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise Problem(400, "bad values", "values must be true or false")


def read_folder(folder: Path) -> Response:
    """A page of the folder's listing (a GET asking no query of it). Plain ones are answered by
    its twin in front of Flask, fastpath.FastPath._list, the same way."""
    limit = _limit()
    after = decode_cursor(queryargs.single("cursor"))
    values = parse_values(queryargs.single("values"))
    # With values, a page ends early (with `next`) once its things' JSON passes a few MiB.
    page = store().list_folder(folder.text, after, limit, values, MAX_PAGE_VALUE_BYTES)
    # A key limited to a prefix sees only what lies on the way to, or under, its prefix (any
    # other request sees everything: no need to ask for each entry).
    shown = auth.can_read if auth.current().prefix else None
    response = Response(listing_json(folder.text, page, shown), mimetype="application/json")
    # Watch with this as Last-Event-ID to get every change the listing may not show.
    response.headers["Last-Event-ID"] = page.position
    response.headers["Cache-Control"] = "no-cache"
    return response


def listing_json(folder: str, page: Page, shown: Callable[[str], bool] | None = None) -> bytes:
    """The page as the API shows it, `{"things": [{path, ttl, last_updated[, value]}...],
    "folders": [path...], "next": cursor}`, only the paths `shown` allows if given. Built from
    the page's columns: a dict per thing, nothing else per entry."""
    columns = page.names, page.ttls, page.last_updated
    things: list[dict[str, Any]]
    if page.bodies is None:
        things = [
            {"path": folder + name, "ttl": ttl, "last_updated": updated}
            for name, ttl, updated in zip(*columns, strict=True)
        ]
    else:
        # The stored bytes are JSON already (big ints included): embed them unparsed.
        things = [
            {"path": folder + name, "ttl": ttl, "last_updated": updated, "value": Fragment(body)}
            for name, ttl, updated, body in zip(*columns, page.bodies, strict=True)
        ]
    folders = [folder + name for name in page.folders]
    if shown is not None:
        things = [thing for thing in things if shown(thing["path"])]
        folders = [path for path in folders if shown(path)]
    next_cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
    return orjson.dumps({"things": things, "folders": folders, "next": next_cursor})


def delete_folder(folder: Path) -> Response:
    if queryargs.single("recursive") != "true":
        raise Problem(
            400,
            "recursive delete not confirmed",
            f"deleting the folder {folder.text or '/'} removes everything below it: "
            "add ?recursive=true to confirm",
        )

    def plan(reading: Store) -> tuple[rulesguard.Writes, Callable[[Store], Response]]:
        def make(writing: Store) -> Response:
            deleted = writing.delete_tree(folder.text)
            return Response(orjson.dumps({"deleted": deleted}), mimetype="application/json")

        return [(rulesguard.location(folder.text), None)], make

    return rulesguard.write(plan)  # a write of null at the folder, for the rules
