"""The export format, one thing per line (JSON Lines): `{"path": P, "thing": {...}, "ttl": N}`.

`thingstash export` writes it; `thingstash import` and `POST /_import` read it. A line is
checked as a PUT of `thing` at `path` with `?ttl=N` would be, by the same functions (paths.py,
documents.py), so an import refuses exactly what a PUT would, and says on which line. Pure
functions, no I/O: the client checks a whole file with them before sending anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from thingstash.core import documents
from thingstash.core.config import MAX_DEPTH
from thingstash.core.documents import BadDocument
from thingstash.core.paths import BadPath, is_reserved, parse_path

FIELDS = ("path", "thing", "ttl")


class BadLine(ValueError):
    """A line that cannot be imported; the message names the line and says why."""

    def __init__(self, number: int, detail: str) -> None:
        super().__init__(f"line {number}: {detail}")
        self.number = number
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Line:
    """A valid line: the thing without its reserved fields, serialised, and its lifetime."""

    number: int
    path: str
    thing: dict[str, Any]
    body: bytes
    ttl: int
    server_values: bool  # holds {".sv": ...} (resolved by the server when it writes)


def parse_line(raw: bytes, number: int, default_ttl: int, max_ttl: int) -> Line:
    """Check one line (without its newline); raise BadLine saying what is wrong."""
    try:
        record = documents.loads(raw)
    except BadDocument as error:
        # The parser's message speaks of a request body; here it is a line of one.
        raise BadLine(number, error.detail.replace("the body is", "it is", 1)) from None
    if not isinstance(record, dict):
        raise BadLine(number, 'expected an object {"path": ..., "thing": {...}, "ttl": ...}')
    unknown = [name for name in record if name not in FIELDS]
    if unknown:
        raise BadLine(number, f"unknown field {unknown[0]!r}; a line has path, thing and ttl")
    path = record.get("path")
    if not isinstance(path, str):
        raise BadLine(number, '"path" must be a string')
    try:
        parsed = parse_path(path)
    except BadPath as error:
        raise BadLine(number, f"bad path {path!r}: {error}") from None
    if parsed.is_folder:
        raise BadLine(number, f"{path!r} is a folder (it ends in /); name a thing")
    if is_reserved(parsed):
        raise BadLine(number, f"{path!r}: top-level names starting with _ are reserved")
    if "thing" not in record:
        raise BadLine(number, '"thing" is missing')
    try:
        # The line's own braces count too: one more than the thing's, at most.
        brackets = raw.count(b"{") + raw.count(b"[") - 1
        thing = documents.check_object(record["thing"], MAX_DEPTH, brackets, '"thing"')
        thing_ttl = documents.pop_reserved(thing)
        line_ttl = record.get("ttl")
        # As a PUT's body `ttl` and its `?ttl=`: either gives the lifetime; both must agree.
        if line_ttl is not None and thing_ttl is not None and line_ttl != thing_ttl:
            given = documents.dumps(line_ttl).decode(), documents.dumps(thing_ttl).decode()
            raise BadDocument(
                "bad ttl", f"the line's ttl {given[0]} and the thing's {given[1]} disagree"
            )
        if type(line_ttl) is int and line_ttl == 0:
            line_ttl = 1  # an export lists a thing about to expire with ttl 0; a write needs 1 s
        ttl = documents.resolve_ttl(
            thing_ttl if line_ttl is None else line_ttl, None, default_ttl, max_ttl
        )
        body = documents.dumps(thing)
        # As in a PUT: the serialised key shows as ".sv" (dumps escapes no letter).
        server_values = documents.SERVER_VALUE_KEY in body and documents.has_server_values(thing)
        if server_values:
            documents.resolve_thing(thing, None, 0)  # refuses any other .sv form, and a bare one
            if documents.needs_current(thing):
                # An increment depends on what is stored when it runs: it would make an import
                # neither all-or-nothing nor safe to send again. Exports never hold one.
                raise BadDocument(
                    "bad import line",
                    "an increment can't be imported (it is not idempotent); PATCH it instead",
                )
    except BadDocument as error:
        raise BadLine(number, error.detail) from None
    return Line(number, path, thing, body, ttl, server_values)
