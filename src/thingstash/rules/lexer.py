"""An expression's tokens: JavaScript's lexical grammar cut to what Firebase's rules accept
(names, numbers, quoted strings, regular-expression literals, operators). Anything else is a
RulesError naming the 1-based column, so the parser never sees a character it cannot place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .model import RulesError

TokenKind = Literal["name", "number", "string", "regex", "op", "end"]

# Longest first, so `===` wins over `==` and `!==` over `!=`.
_OPERATORS = (
    "===", "!==", "==", "!=", "<=", ">=", "&&", "||",
    "<", ">", "+", "-", "*", "/", "%", "!", "?", ":", "(", ")", "[", "]", ".", ",",
)  # fmt: skip
_REFUSED = {"=": "assignment", ";": "`;`", "**": "`**`", "&": "`&`", "|": "`|`"}
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its text (a string's or regex's decoded body) and 1-based column.
    A regex's flags ride in `flags`."""

    kind: TokenKind
    text: str
    col: int
    flags: str = ""


class ExprError(RulesError):
    """An expression's error at a 1-based column (evaluator.compile_expression adds the rule's
    place): raised by the lexer, the parser and the checker."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message, f"column {column}")
        self.column = column


def _fail(message: str, pos: int) -> ExprError:
    return ExprError(message, pos + 1)


def _digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def _name_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch in "_$")


def _regex_allowed(prev: Token | None) -> bool:
    """A `/` starts a regex where an operand is expected, as JavaScript decides."""
    if prev is None:
        return True
    if prev.kind in ("name", "number", "string", "regex"):
        return False
    return prev.text not in (")", "]")


def tokenize(source: str) -> list[Token]:
    """The tokens of `source`, ending in an `end` token."""
    tokens: list[Token] = []
    pos, size = 0, len(source)
    while pos < size:
        ch = source[pos]
        if ch in " \t\r\n\v\f\u00a0\ufeff\u2028\u2029":
            pos += 1
        elif ch.isascii() and (ch.isalpha() or ch in "_$"):
            end = pos + 1
            while end < size and _name_char(source[end]):
                end += 1
            tokens.append(Token("name", source[pos:end], pos + 1))
            pos = end
        elif _digit(ch) or (ch == "." and pos + 1 < size and _digit(source[pos + 1])):
            pos = _number(source, pos, tokens)
        elif ch in "'\"":
            pos = _string(source, pos, tokens)
        elif ch == "/" and _regex_allowed(tokens[-1] if tokens else None):
            pos = _regex(source, pos, tokens)
        else:
            if source.startswith("**", pos):
                raise _fail("`**` is not allowed", pos)
            for op in _OPERATORS:
                if source.startswith(op, pos):
                    tokens.append(Token("op", op, pos + 1))
                    pos += len(op)
                    break
            else:
                what = _REFUSED.get(ch, repr(ch))
                raise _fail(f"unexpected {what}", pos)
    tokens.append(Token("end", "", size + 1))
    return tokens


def _number(source: str, pos: int, tokens: list[Token]) -> int:
    end = pos
    size = len(source)
    while end < size and _digit(source[end]):
        end += 1
    if end < size and source[end] == ".":
        end += 1
        while end < size and _digit(source[end]):
            end += 1
    if end < size and source[end] in "eE":
        exp = end + 1
        if exp < size and source[exp] in "+-":
            exp += 1
        if exp < size and _digit(source[exp]):
            end = exp
            while end < size and _digit(source[end]):
                end += 1
    if end < size and _name_char(source[end]):
        raise _fail("malformed number", pos)
    tokens.append(Token("number", source[pos:end], pos + 1))
    return end


def _string(source: str, pos: int, tokens: list[Token]) -> int:
    quote = source[pos]
    out: list[str] = []
    i = pos + 1
    size = len(source)
    while i < size:
        ch = source[i]
        if ch == quote:
            tokens.append(Token("string", _pair_surrogates("".join(out)), pos + 1))
            return i + 1
        if ch in "\n\r":
            break
        if ch == "\\":
            if i + 1 >= size:
                break
            esc = source[i + 1]
            if esc in "xu":
                width = 2 if esc == "x" else 4
                digits = source[i + 2 : i + 2 + width]
                if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                    raise _fail("bad escape in string", i)
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            out.append(_ESCAPES.get(esc, esc))
            i += 2
            continue
        out.append(ch)
        i += 1
    raise _fail("unterminated string", pos)


def _pair_surrogates(text: str) -> str:
    """`\\ud83d\\ude00` escapes as the one character JavaScript means; lone halves stay."""
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _regex(source: str, pos: int, tokens: list[Token]) -> int:
    i = pos + 1
    size = len(source)
    in_class = False
    while i < size:
        ch = source[i]
        if ch in "\n\r":
            break
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif ch == "/" and not in_class:
            body = source[pos + 1 : i]
            end = i + 1
            while end < size and source[end].isascii() and source[end].isalnum():
                end += 1
            if not body:
                raise _fail("empty regular expression", pos)
            tokens.append(Token("regex", body, pos + 1, source[i + 1 : end]))
            return end
        i += 1
    raise _fail("unterminated regular expression", pos)
