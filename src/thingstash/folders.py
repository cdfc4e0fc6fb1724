"""Folders: listings of what is directly inside a folder, and recursive deletes."""

from __future__ import annotations

from flask import Response, request

from thingstash import auth, documents
from thingstash.context import store
from thingstash.errors import Problem
from thingstash.paths import Path

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def wants_events() -> bool:
    return "text/event-stream" in request.headers.get("Accept", "")


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(400, "bad limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def read_folder(folder: Path) -> Response:
    page = store().list_folder(folder.text, request.args.get("cursor"), _limit())
    # A key limited to a prefix sees only what lies on the way to, or under, its prefix.
    page.entries[:] = [e for e in page.entries if auth.can_read(folder.text + e.name)]
    listing = {
        "things": [
            {
                "path": folder.text + entry.name,
                "ttl": entry.thing.ttl,
                "last_updated": entry.thing.last_updated,
            }
            for entry in page.entries
            if entry.thing is not None
        ],
        "folders": [folder.text + entry.name for entry in page.entries if entry.thing is None],
        "next": page.next_cursor,
    }
    return Response(documents.dumps(listing), mimetype="application/json")


def watch(path: Path) -> Response:
    raise Problem(501, "not implemented", "watching is not available yet")


def delete_folder(folder: Path) -> Response:
    if request.args.get("recursive") != "true":
        raise Problem(
            400,
            "recursive delete not confirmed",
            f"deleting the folder {folder.text or '/'} removes everything below it: "
            "add ?recursive=true to confirm",
        )
    raise Problem(501, "not implemented", "recursive delete is not available yet")
