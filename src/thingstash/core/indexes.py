"""Index declarations (API.md, "Queries"): an `Index` on a field of the things in the folders a
pattern names, building then ready; checking a declared folder pattern and field; finding the
ready index that covers a query's folder and field. The stores keep the indexes themselves
(store/indexes.py) and build them (store/indexbuild.py).

Pure (stdlib and orjson): no Redis, no HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from thingstash.core import documents, ordering
from thingstash.core.ordering import Field
from thingstash.core.queries import BadQuery

BUILDING = "building"
READY = "ready"
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Index:
    """A declared index: the things directly in each folder matching `folder` (a folder path
    whose segments may be `*`, one segment each), ordered by `field`. `state` is "building"
    while the things already stored are being taken in, then "ready"; only a ready index
    answers queries (every write keeps it current from the moment it is declared)."""

    id: str
    folder: str
    field: str
    created: int
    state: str = BUILDING

    def covers(self, folder: str) -> bool:
        """Whether the concrete folder `folder` ("a/b/", "" for the top level) is one of its."""
        if "*" not in self.folder:
            return folder == self.folder
        pattern = self.folder.split("/")
        actual = folder.split("/")
        return len(pattern) == len(actual) and all(
            p == WILDCARD or p == a for p, a in zip(pattern, actual, strict=True)
        )

    @property
    def parsed_field(self) -> Field:
        return ordering.parse_field(self.field)

    def to_json(self) -> bytes:
        return documents.dumps(
            {
                "folder": self.folder,
                "field": self.field,
                "created": self.created,
                "state": self.state,
            }
        )

    @classmethod
    def from_json(cls, index_id: str, raw: bytes) -> Index:
        data = documents.loads(raw)
        return cls(index_id, data["folder"], data["field"], data["created"], data["state"])

    def public(self) -> dict[str, Any]:
        """As /_indexes and `thingstash index list` show it."""
        return {
            "id": self.id,
            "folder": self.folder,
            "field": self.field,
            "created": self.created,
            "state": self.state,
        }


def parse_index_folder(text: str) -> str:
    """A folder pattern as declared ("games/*/scores/"; "" or "/" the top level), with its
    trailing slash; BadQuery says what is wrong."""
    if text in ("", "/"):
        return ""
    folder = text if text.endswith("/") else text + "/"
    title = "bad folder"
    for segment in folder[:-1].split("/"):
        if segment == "":
            raise BadQuery(title, f"the folder {text!r} has an empty segment (or a leading /)")
        if segment in (".", ".."):
            raise BadQuery(title, f"the folder {text!r} has a {segment!r} segment")
        if "*" in segment and segment != WILDCARD:
            raise BadQuery(
                title, f"* stands for one whole segment, as in games/*/scores/, not {segment!r}"
            )
        if any(ord(c) < 0x20 or c == "\x7f" for c in segment):
            raise BadQuery(title, "a folder may not contain control characters")
    if folder.startswith("_"):
        raise BadQuery(title, "top-level names starting with _ belong to the service")
    return folder


def parse_index_field(text: str) -> Field:
    try:
        field = ordering.parse_field(text)
    except ordering.BadField as error:
        raise BadQuery("bad field", str(error)) from None
    if field.is_name:
        # It would cost every write and never be read: the folder's own index answers.
        raise BadQuery(
            "no index needed",
            "order_by=$name needs no index: every folder answers it, with ranks and counts, "
            "whatever its size; index a field of the things' JSON or $updated",
        )
    return field


def covering(indexes: Sequence[Index], folder: str, field: Field) -> Index | None:
    """The ready index that answers queries on `field` in `folder`, if any."""
    for index in indexes:
        if index.state == READY and index.field == field.text and index.covers(folder):
            return index
    return None
