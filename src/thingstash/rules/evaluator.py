"""An expression compiled once at upload (parse, type check, then Python closures) and run per
request. `compile_expression` is the door; `Expression.evaluate` is True only when the rule
evaluates to boolean true without a runtime error: an error denies, and `|| true` does not
rescue it, as in Firebase."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from .checker import check
from .lexer import ExprError
from .model import Env, Kind, QueryInfo, RulesError
from .parser import parse
from .regex import compile_regex
from .syntax import (
    ArrayLit,
    Binary,
    Call,
    Conditional,
    Index,
    Literal,
    Member,
    Name,
    Node,
    Regex,
    Unary,
)

Fn = Callable[[Env], Any]
SAFE_INT = 2**53


class Fail(Exception):
    """A runtime error inside a rule: the rule denies."""


_FAIL = Fail()


class Expression:
    """A compiled rule: `source` as written, `kind`, and `evaluate(env)`."""

    __slots__ = ("source", "kind", "_fn")

    def __init__(self, source: str, kind: Kind | None, fn: Fn) -> None:
        self.source = source
        self.kind = kind
        self._fn = fn

    def evaluate(self, env: Env) -> bool:
        """True only for a boolean true reached with no runtime error; never raises."""
        try:
            return self._fn(env) is True
        except Exception:  # Fail, and anything a snapshot's store might raise: deny
            return False

    def run(self, env: Env) -> Any:
        """The expression's value, or Fail on a runtime error (tests and diagnostics)."""
        return self._fn(env)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def constant(value: bool) -> Expression:
    """A boolean JSON rule (`".read": true`)."""
    return Expression("true" if value else "false", None, lambda env: value)


def compile_expression(
    source: str, kind: Kind, wildcards: Collection[str], place: str = ""
) -> Expression:
    """Parse and type-check `source` as a rule of `kind` where the `$` variables `wildcards`
    (named with their `$`) are bound; RulesError with `place` and the column when it fails."""
    try:
        node = parse(source)
        check(node, kind, wildcards)
        return Expression(source, kind, _compile(node))
    except ExprError as error:
        where = f"{place}, column {error.column}" if place else f"column {error.column}"
        raise RulesError(error.message, where) from None


def js_type(value: Any) -> str:
    """JavaScript's idea of a value's type, telling booleans from numbers."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    return "object"


def _is_num(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def js_string(number: float) -> str:
    """JavaScript's Number#toString for a number joined to a string."""
    if number != number:
        return "NaN"
    if number in (math.inf, -math.inf):
        return "Infinity" if number > 0 else "-Infinity"
    if abs(number) < SAFE_INT and number == int(number):
        return str(int(number))
    text = repr(float(number))
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("-")
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + exponent - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    if -6 < point <= 21:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    tail = f".{digits[1:]}" if len(digits) > 1 else ""
    exp = point - 1
    return f"{sign}{digits[0]}{tail}e{'+' if exp > 0 else '-'}{abs(exp)}"


def _number(value: int | float) -> int | float:
    if type(value) is int and not -SAFE_INT <= value <= SAFE_INT:
        return float(value)
    return value


def strict_equal(left: Any, right: Any) -> bool:
    """`===` (Firebase's `==` too): same JavaScript type and same value."""
    if js_type(left) != js_type(right):
        return False
    return bool(left == right)


def _compile(node: Node) -> Fn:  # noqa: C901 - one branch per node type
    if isinstance(node, Literal):
        value = node.value
        return lambda env: value
    if isinstance(node, Name):
        return _name(node.name)
    if isinstance(node, Member):
        return _member(_compile(node.obj), node.name)
    if isinstance(node, Index):
        return _index(_compile(node.obj), _compile(node.key))
    if isinstance(node, Call):
        return _call(node, _compile(node.obj), [_arg(arg) for arg in node.args])
    if isinstance(node, Unary):
        return _unary(node.op, _compile(node.operand))
    if isinstance(node, Binary):
        return _binary(node.op, _compile(node.left), _compile(node.right))
    if isinstance(node, Conditional):
        return _conditional(_compile(node.test), _compile(node.then), _compile(node.other))
    raise ExprError("unexpected expression", node.col)  # arrays, regexes: only as arguments


def _arg(node: Node) -> Any:
    """A method's argument: a closure, a list of closures (array literal) or a regex test."""
    if isinstance(node, Regex):
        try:
            return compile_regex(node.pattern, node.flags)
        except RulesError as error:
            raise ExprError(error.message, node.col) from None
    if isinstance(node, ArrayLit):
        return [_compile(item) for item in node.items]
    return _compile(node)


_QUERY_ATTRS = {
    "orderByKey": "order_by_key",
    "orderByValue": "order_by_value",
    "orderByPriority": "order_by_priority",
    "orderByChild": "order_by_child",
    "startAt": "start_at",
    "startAfter": "start_after",
    "endAt": "end_at",
    "endBefore": "end_before",
    "equalTo": "equal_to",
    "limitToFirst": "limit_to_first",
    "limitToLast": "limit_to_last",
}


def _name(name: str) -> Fn:
    if name == "auth":
        return lambda env: env.auth
    if name == "now":
        return lambda env: env.now
    if name == "root":
        return lambda env: env.root
    if name == "data":
        return lambda env: env.data
    if name == "query":
        return lambda env: env.query
    if name == "newData":

        def new_data(env: Env) -> Any:
            if env.new_data is None:
                raise _FAIL
            return env.new_data

        return new_data

    def wildcard(env: Env) -> Any:
        value = env.wildcards.get(name)
        if value is None:
            raise _FAIL
        return value

    return wildcard


def _utf16_length(text: str) -> int:
    return len(text) if text.isascii() else len(_utf16(text)) // 2


def _member(obj: Fn, name: str) -> Fn:
    """`obj.name`: auth's members (null when missing, and under a null auth: Firebase's
    recordings), a string's `length`, `query`'s fields."""
    attr = _QUERY_ATTRS.get(name)

    def member(env: Env) -> Any:
        value = obj(env)
        if isinstance(value, dict):
            return value.get(name)
        if name == "length":
            if type(value) is not str:
                raise _FAIL
            return _utf16_length(value)
        if attr is not None and isinstance(value, QueryInfo):
            return getattr(value, attr)
        if value is None or js_type(value) != "object":
            return None
        raise _FAIL

    return member


def _index(obj: Fn, key: Fn) -> Fn:
    def index(env: Env) -> Any:
        value = obj(env)
        name = key(env)
        if type(name) is not str:
            raise _FAIL
        if isinstance(value, dict):
            return value.get(name)
        if value is None or js_type(value) != "object":
            return None
        raise _FAIL

    return index


def _text(fn: Fn, env: Env) -> str:
    value = fn(env)
    if type(value) is not str:
        raise _FAIL
    return value


_PLAIN = frozenset({type(None), bool, int, float, str, dict, list, QueryInfo})


def _call(node: Call, obj: Fn, args: list[Any]) -> Fn:
    """A method call. The checker vouched for the name and the argument kinds; here only the
    values are checked (a wrong one fails, and the rule denies). Snapshot and string methods
    have distinct names, so the name says which the receiver must be."""
    name = node.method
    on_snapshot = _SNAPSHOT_CALLS.get(name)
    if on_snapshot is not None:
        snapshot_op = on_snapshot

        def snapshot_call(env: Env) -> Any:
            target = obj(env)
            if type(target) in _PLAIN:
                raise _FAIL
            return snapshot_op(target, args, env)

        return snapshot_call
    string_op = _STRING_CALLS.get(name)
    if string_op is None:
        raise ExprError(f"no method `{name}`", node.col)
    op = string_op

    def string_call(env: Env) -> Any:
        target = obj(env)
        if type(target) is not str:
            raise _FAIL
        return op(target, args, env)

    return string_call


Op = Callable[[Any, list[Any], Env], Any]
_SNAPSHOT_CALLS: dict[str, Op] = {
    "val": lambda s, a, env: s.val(),
    "child": lambda s, a, env: s.child(_text(a[0], env)),
    "parent": lambda s, a, env: s.parent(),
    "hasChild": lambda s, a, env: s.has_child(_text(a[0], env)),
    "hasChildren": lambda s, a, env: s.has_children(
        [_text(item, env) for item in a[0]] if a else None
    ),
    "exists": lambda s, a, env: s.exists(),
    "getPriority": lambda s, a, env: s.get_priority(),
    "isNumber": lambda s, a, env: s.is_number(),
    "isString": lambda s, a, env: s.is_string(),
    "isBoolean": lambda s, a, env: s.is_boolean(),
}
_STRING_CALLS: dict[str, Op] = {
    "contains": lambda s, a, env: _text(a[0], env) in s,
    "beginsWith": lambda s, a, env: s.startswith(_text(a[0], env)),
    "endsWith": lambda s, a, env: s.endswith(_text(a[0], env)),
    "replace": lambda s, a, env: s.replace(_text(a[0], env), _text(a[1], env)),
    "toLowerCase": lambda s, a, env: s.lower(),
    "toUpperCase": lambda s, a, env: s.upper(),
    "matches": lambda s, a, env: a[0](s),
}


def _unary(op: str, operand: Fn) -> Fn:
    if op == "!":

        def negate(env: Env) -> Any:
            value = operand(env)
            if type(value) is not bool:
                raise _FAIL
            return not value

        return negate

    def minus(env: Env) -> Any:
        value = operand(env)
        if not _is_num(value):
            raise _FAIL
        return -value

    return minus


def _conditional(test: Fn, then: Fn, other: Fn) -> Fn:
    def conditional(env: Env) -> Any:
        value = test(env)
        if type(value) is not bool:
            raise _FAIL
        return then(env) if value else other(env)

    return conditional


def _boolean(fn: Fn, env: Env) -> bool:
    value = fn(env)
    if type(value) is not bool:
        raise _FAIL
    return value


def _binary(op: str, left: Fn, right: Fn) -> Fn:  # noqa: C901 - one branch per operator
    if op == "&&":
        return lambda env: _boolean(left, env) and _boolean(right, env)
    if op == "||":
        return lambda env: _boolean(left, env) or _boolean(right, env)
    if op in ("==", "==="):
        return lambda env: strict_equal(left(env), right(env))
    if op in ("!=", "!=="):
        return lambda env: not strict_equal(left(env), right(env))
    if op in ("<", "<=", ">", ">="):
        compare = _COMPARE[op]

        def comparison(env: Env) -> Any:
            a, b = left(env), right(env)
            if _is_num(a) and _is_num(b):
                return compare(a, b)
            if type(a) is not str or type(b) is not str:
                raise _FAIL
            if a.isascii() and b.isascii():
                return compare(a, b)
            return compare(_utf16(a), _utf16(b))  # JavaScript's order: by UTF-16 code units

        return comparison
    if op == "+":
        return lambda env: _plus(left(env), right(env))
    arithmetic = _ARITHMETIC[op]

    def numbers(env: Env) -> Any:
        a, b = left(env), right(env)
        if not (_is_num(a) and _is_num(b)):
            raise _FAIL
        return arithmetic(a, b)

    return numbers


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def _plus(a: Any, b: Any) -> Any:
    a_num, b_num = _is_num(a), _is_num(b)
    if a_num and b_num:
        return _number(a + b)
    a_str, b_str = type(a) is str, type(b) is str
    if a_str and (b_str or b_num):
        return a + (b if b_str else js_string(b))
    if b_str and a_num:
        return js_string(a) + b
    raise _FAIL


def _divide(a: float, b: float) -> float:
    if b == 0:
        return math.nan  # Firebase's, not JavaScript's Infinity: (1/0 + '') == 'NaN'
    result = a / b
    return int(result) if result.is_integer() and abs(result) <= SAFE_INT else result


def _modulo(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or a != a or b != b:
        return math.nan
    if math.isinf(b):
        return a
    if type(a) is int and type(b) is int:
        result = abs(a) % abs(b)
        return -result if a < 0 else result
    return math.fmod(a, b)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "-": lambda a, b: _number(a - b),
    "*": lambda a, b: _number(a * b),
    "/": _divide,
    "%": _modulo,
}
