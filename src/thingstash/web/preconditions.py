"""HTTP conditional-request headers (RFC 9110 section 13) parsed into model `Conditions`.

ETags are the thing's version in quotes and always strong. If-Match compares strongly, so a weak
tag there never matches; If-None-Match compares weakly, so `W/"v"` matches version v.
"""

from __future__ import annotations

import re

from werkzeug.http import parse_date

from thingstash.core.model import Conditions

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


class BadPrecondition(ValueError):
    """An If-Match or If-None-Match header that is not `*` or a list of entity tags."""


def etag(version: str) -> str:
    return f'"{version}"'


def _parse(header: str, name: str, weak_matches: bool) -> str | tuple[str, ...]:
    if header.strip() == "*":
        return "*"
    tags: list[str] = []
    position = 0
    while position < len(header):
        if header[position:].strip() in {"", ","}:
            break
        match = _ENTITY_TAG.match(header, position)
        if match is None:
            raise BadPrecondition(
                f'{name} must be * or a comma-separated list of quoted entity tags like "abc" '
                f'or W/"abc", not {header!r}'
            )
        weak, opaque = match.groups()
        if weak_matches or not weak:
            tags.append(opaque)
        position = match.end()
    if not tags and not header.strip():
        raise BadPrecondition(f"{name} is empty")
    return tuple(tags)


def from_headers(if_match: str | None, if_none_match: str | None) -> Conditions:
    return Conditions(
        if_match=None if if_match is None else _parse(if_match, "If-Match", weak_matches=False),
        if_none_match=None
        if if_none_match is None
        else _parse(if_none_match, "If-None-Match", weak_matches=True),
    )


def modified_since(header: str) -> float | None:
    """An If-Modified-Since date as Unix seconds; None when it is not an HTTP date, which
    RFC 9110 13.1.3 says to ignore (Werkzeug overflows on some, like a 23-digit year)."""
    try:
        date = parse_date(header)
        return None if date is None else date.timestamp()
    except (OverflowError, ValueError):
        return None
