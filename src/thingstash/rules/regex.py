"""`matches(/re/)`'s regular expressions on RE2: linear time whatever the input, a size cap on
the pattern and on RE2's memory, and Firebase's own limits (flag `i` only; `^` only first, `$`
only last; no empty alternative). Refused patterns are RulesError at upload, never at a request."""

from __future__ import annotations

from collections.abc import Callable

import re2  # type: ignore[import-untyped]

from .model import RulesError

MAX_PATTERN = 1024  # characters
MAX_MEM = 1 << 20  # bytes RE2 may use for one compiled pattern
_HEX = frozenset("0123456789abcdefABCDEF")
# Escapes of letters and digits with a meaning both in JavaScript and RE2; others (`\\1`,
# `\\p`, `\\A`, `\\z`, `\\Q`...) mean different things or nothing in Firebase's dialect.
_ESCAPES = frozenset("dDwWsSbBnrtfvxu0")


def compile_regex(pattern: str, flags: str) -> Callable[[str], bool]:
    """A test `text -> bool` (does the pattern occur in text, as JavaScript's `test`), or a
    RulesError saying why Firebase would refuse the literal."""
    if len(pattern) > MAX_PATTERN:
        raise RulesError(f"regular expression longer than {MAX_PATTERN} characters")
    if set(flags) - {"i"} or len(flags) > 1:
        raise RulesError(f"unsupported regular expression flags `{flags}` (only `i`)")
    _check_shape(pattern)
    pattern = _re2_escapes(pattern)
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.case_sensitive = "i" not in flags
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options)
    except Exception as error:  # re2.error and friends: any refusal is the user's pattern
        reason = error.args[0] if error.args else error
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RulesError(f"unsupported regular expression: {reason}") from None

    def test(text: str) -> bool:
        try:
            return compiled.search(text) is not None
        except UnicodeError:  # a lone surrogate: no UTF-8 for RE2, and nothing to match
            return False

    return test


def _re2_escapes(pattern: str) -> str:
    """JavaScript's `\\uXXXX` as RE2's `\\x{XXXX}`; every other escape passes as written."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            digits = pattern[i + 2 : i + 6]
            if pattern[i + 1] == "u" and len(digits) == 4 and set(digits) <= _HEX:
                out.append(f"\\x{{{digits}}}")
                i += 6
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        out.append(pattern[i])
        i += 1
    return "".join(out)


def _check_shape(pattern: str) -> None:
    """Firebase's anchors and alternatives: `^` only at the start, `$` only at the end, no
    empty alternative or group."""
    last = len(pattern) - 1
    in_class = False
    prev = ""  # the previous significant character outside classes, "" at the start
    i = 0
    while i <= last:
        ch = pattern[i]
        if ch == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped.isalnum() and escaped not in _ESCAPES:
                raise RulesError(f"unsupported escape `\\{escaped}` in regular expression")
            i += 2
            prev = "x"
            continue
        if in_class:
            in_class = ch != "]"
            i += 1
            continue
        if ch == "[":
            in_class = True
        elif ch == "^" and i != 0:
            raise RulesError("`^` is only allowed at the start of a regular expression")
        elif ch == "$" and i != last:
            raise RulesError("`$` is only allowed at the end of a regular expression")
        elif ch == "|" and prev in ("", "(", "|"):
            raise RulesError("empty alternative in regular expression")
        elif ch == "?" and prev == "(":
            raise RulesError("`(?` groups are not supported in regular expressions")
        elif ch == ")" and prev in ("(", "|"):
            raise RulesError("empty group or alternative in regular expression")
        prev = ch
        i += 1
    if prev == "|":
        raise RulesError("empty alternative in regular expression")
    if in_class:
        raise RulesError("unterminated character class in regular expression")
