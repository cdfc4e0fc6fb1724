"""Query-string parameters as the API takes them: each one at most once (`?ttl=60&ttl=70` is
refused rather than silently read as 60), numbers through documents.whole_number."""

from __future__ import annotations

from flask import request

from thingstash.core import documents
from thingstash.web.errors import Problem


def single(name: str) -> str | None:
    """The one value of `name` in the query, None when absent; 400 when given more than once."""
    # Most requests have no query string: skip parsing one.
    if not request.environ.get("QUERY_STRING"):
        return None
    values = request.args.getlist(name)
    if len(values) > 1:
        raise Problem(
            400,
            f"repeated {name}",
            f"give {name} at most once; the query has it {len(values)} times",
        )
    return values[0] if values else None


def whole_number(name: str, minimum: int, maximum: int, default: int) -> int:
    raw = single(name)
    return default if raw is None else documents.whole_number(raw, name, minimum, maximum)
