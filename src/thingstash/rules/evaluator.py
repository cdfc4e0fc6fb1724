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
    if number == int(number) and abs(number) < 1e21:
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
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _member(obj: Fn, name: str) -> Fn:
    """`obj.name`: auth's members (null when missing, and under a null auth: Firebase's
    recordings), a string's `length`, `query`'s fields."""
    attr = _QUERY_ATTRS.get(name)

    def member(env: Env) -> Any:
        value = obj(env)
        if type(value) is dict:
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
        if type(value) is dict:
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


def _call(node: Call, obj: Fn, args: list[Any]) -> Fn:  # noqa: C901 - one branch per method
    """A method call; the checker has vouched for the name and the argument kinds, so only
    the values are checked here (a wrong one fails, and the rule denies)."""
    name = node.method
    first: Any = args[0] if args else None
    second: Any = args[1] if len(args) > 1 else None
    snapshot_method = _SNAPSHOT_METHODS.get(name)

    def receiver(env: Env) -> Any:
        value = obj(env)
        if value is None or isinstance(value, dict | QueryInfo | list):
            raise _FAIL
        return value

    if snapshot_method is not None and name not in ("child", "hasChild", "hasChildren"):

        def call0(env: Env) -> Any:
            value = receiver(env)
            if type(value) is str or js_type(value) != "object":
                raise _FAIL
            return snapshot_method(value)

        return call0
    if name in ("child", "hasChild"):
        to_child = name == "child"

        def call_path(env: Env) -> Any:
            value = receiver(env)
            if js_type(value) != "object":
                raise _FAIL
            path = _text(first, env)
            return value.child(path) if to_child else value.has_child(path)

        return call_path
    if name == "hasChildren":

        def has_children(env: Env) -> Any:
            value = receiver(env)
            if js_type(value) != "object":
                raise _FAIL
            names = None if first is None else [_text(item, env) for item in first]
            return value.has_children(names)

        return has_children

    def string_receiver(env: Env) -> str:
        value = obj(env)
        if type(value) is not str:
            raise _FAIL
        return value

    if name == "matches":
        test: Callable[[str], bool] = first
        return lambda env: test(string_receiver(env))
    if name == "toLowerCase":
        return lambda env: string_receiver(env).lower()
    if name == "toUpperCase":
        return lambda env: string_receiver(env).upper()
    if name == "replace":
        return lambda env: string_receiver(env).replace(_text(first, env), _text(second, env))
    if name == "contains":
        return lambda env: _text(first, env) in string_receiver(env)
    if name == "beginsWith":
        return lambda env: string_receiver(env).startswith(_text(first, env))
    if name == "endsWith":
        return lambda env: string_receiver(env).endswith(_text(first, env))
    raise ExprError(f"no method `{name}`", node.col)


_SNAPSHOT_METHODS: dict[str, Callable[[Any], Any]] = {
    "val": lambda s: s.val(),
    "parent": lambda s: s.parent(),
    "exists": lambda s: s.exists(),
    "getPriority": lambda s: s.get_priority(),
    "isNumber": lambda s: s.is_number(),
    "isString": lambda s: s.is_string(),
    "isBoolean": lambda s: s.is_boolean(),
    "child": lambda s: None,
    "hasChild": lambda s: None,
    "hasChildren": lambda s: None,
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
            if not ((_is_num(a) and _is_num(b)) or (type(a) is str and type(b) is str)):
                raise _FAIL
            return compare(a, b)

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
