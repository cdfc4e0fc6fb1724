"""Paths of things and folders: what a client may name, checked before anything touches storage.

A path is a list of `/`-separated segments; one ending in `/` names a folder. The empty string is
the root folder. Paths carry no leading slash anywhere in the API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from thingstash.core.config import MAX_PATH_BYTES

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadPath(ValueError):
    """The path is not one a thing or folder may have; the message says why."""


@dataclass(frozen=True, slots=True)
class Path:
    """A validated path: `text` without a leading slash; `is_folder` when it ends in `/`."""

    text: str

    @property
    def is_folder(self) -> bool:
        return self.text == "" or self.text.endswith("/")

    @property
    def parent(self) -> str:
        """The folder holding this path ("" for the top level)."""
        stripped = self.text[:-1] if self.text.endswith("/") else self.text
        cut = stripped.rfind("/")
        return stripped[: cut + 1]

    @property
    def name(self) -> str:
        """The last segment, with a trailing `/` for a folder."""
        return self.text[len(self.parent) :]

    def __str__(self) -> str:
        return self.text


def parse_path(raw: str) -> Path:
    """Validate a decoded URL path (leading `/` already removed) and return it."""
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise BadPath(f"the path is longer than {MAX_PATH_BYTES} bytes")
    if _CONTROL.search(raw):
        raise BadPath("the path contains a control character")
    if raw == "":
        return Path("")
    body = raw[:-1] if raw.endswith("/") else raw
    for segment in body.split("/"):
        if segment == "":
            raise BadPath("the path has an empty segment (two slashes in a row, or a leading one)")
        if segment in {".", ".."}:
            raise BadPath(f"the path has a {segment!r} segment; name things explicitly")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise BadPath("the path is not valid UTF-8") from None
    return Path(raw)


def is_reserved(path: Path) -> bool:
    """Top-level names starting with `_` belong to the service (/_health, /_ui, ...)."""
    return path.text.startswith("_")
