"""Firebase's dialect of JSON for rules documents: `//` and `/* */` comments outside strings and
literal newlines and tabs inside strings (multi-line rules). Comments become spaces, so the
columns of what remains stay where they were; the rest is the standard library's JSON."""

from __future__ import annotations

import json
from typing import Any

from .model import RulesError


def strip_comments(text: str) -> str:
    """`text` with its comments blanked (newlines kept); RulesError on an unclosed `/*`."""
    out: list[str] = []
    i, size = 0, len(text)
    start = 0
    while i < size:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < size and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            end = size if end < 0 else end
            out.append(text[start:i])
            out.append(" " * (end - i))
            i = start = end
        elif ch == "/" and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                line, column = _position(text, i)
                raise RulesError("unclosed comment", f"line {line}, column {column}")
            end += 2
            out.append(text[start:i])
            out.append("".join(c if c == "\n" else " " for c in text[i:end]))
            i = start = end
        else:
            i += 1
    out.append(text[start:])
    return "".join(out)


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def parse_document(text: str) -> Any:
    """A rules document's text to Python values; RulesError with line and column when it is
    not Firebase's JSON."""
    cleaned = strip_comments(text)
    try:
        return json.loads(cleaned, strict=False)
    except json.JSONDecodeError as error:
        raise RulesError(error.msg, f"line {error.lineno}, column {error.colno}") from None
    except RecursionError:
        raise RulesError("document nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise RulesError(str(error)) from None
