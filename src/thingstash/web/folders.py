"""Folders: listings of what is directly inside a folder, and recursive deletes."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson
from flask import Response, request

from thingstash.config import MAX_PAGE_VALUE_BYTES
from thingstash.paths import Path
from thingstash.web import auth, queryargs
from thingstash.web import queries as folderqueries
from thingstash.web import watch as watching
from thingstash.web.context import store
from thingstash.web.errors import Problem

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,2800}")


def wants_events() -> bool:
    # Straight from the WSGI environ: every GET asks, and Headers.get costs ten calls.
    return "text/event-stream" in request.environ.get("HTTP_ACCEPT", "")


def _limit() -> int:
    return queryargs.whole_number("limit", 1, MAX_LIMIT, DEFAULT_LIMIT)


def encode_cursor(name: str) -> str:
    """The cursor is the last name listed, base64url without padding: opaque to clients, and
    a listing resumes after it even if that name has been deleted meanwhile."""
    return base64.urlsafe_b64encode(name.encode("utf-8")).rstrip(b"=").decode("ascii")


def _cursor() -> str | None:
    raw = queryargs.single("cursor")
    if raw is None or raw == "":
        return None
    bad = Problem(400, "bad cursor", "cursor must be the `next` value of an earlier listing")
    if not _CURSOR.fullmatch(raw):
        raise bad
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise bad from None


def _values() -> bool:
    raw = queryargs.single("values")
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise Problem(400, "bad values", "values must be true or false")


def read_folder(folder: Path) -> Response:
    query = folderqueries.asked()
    if query is not None:
        return folderqueries.read_query(folder, query)
    limit, after, values = _limit(), _cursor(), _values()
    # With values, a page ends early (with `next`) once its things' JSON passes a few MiB.
    page = store().list_folder(folder.text, after, limit, values, MAX_PAGE_VALUE_BYTES)
    # A key limited to a prefix sees only what lies on the way to, or under, its prefix (any
    # other request sees everything: no need to ask for each entry).
    if auth.current().prefix:
        page.entries[:] = [e for e in page.entries if auth.can_read(folder.text + e.name)]
    things: list[dict[str, Any]] = []
    for entry in page.entries:
        if entry.thing is None:
            continue
        item: dict[str, Any] = {
            "path": folder.text + entry.name,
            "ttl": entry.thing.ttl,
            "last_updated": entry.thing.last_updated,
        }
        if values:
            # The stored bytes are JSON already (big ints included): embed them unparsed.
            item["value"] = orjson.Fragment(entry.thing.body)
        things.append(item)
    listing = {
        "things": things,
        "folders": [folder.text + entry.name for entry in page.entries if entry.thing is None],
        "next": encode_cursor(page.next_cursor) if page.next_cursor else None,
    }
    response = Response(orjson.dumps(listing), mimetype="application/json")
    # Watch with this as Last-Event-ID to get every change the listing may not show.
    response.headers["Last-Event-ID"] = page.position
    response.headers["Cache-Control"] = "no-cache"
    return response


def watch(path: Path) -> Response:
    query = folderqueries.asked() if path.is_folder else None
    if query is not None:
        return folderqueries.watch_query(path, query)
    return watching.stream(path)


def delete_folder(folder: Path) -> Response:
    if queryargs.single("recursive") != "true":
        raise Problem(
            400,
            "recursive delete not confirmed",
            f"deleting the folder {folder.text or '/'} removes everything below it: "
            "add ?recursive=true to confirm",
        )
    deleted = store().delete_tree(folder.text)
    return Response(orjson.dumps({"deleted": deleted}), mimetype="application/json")
