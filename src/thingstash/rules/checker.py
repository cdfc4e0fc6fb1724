"""The static type check Firebase runs at upload: every name known and allowed in this kind of
rule, every member and method existing on its object's type, arguments of the right types, and
a result that can be boolean. Types are sets of what a value may be at run time; a check fails
only when no member of the set could work (`root.val()` may be a string, so `.contains` passes
here and may fail at run time, which denies)."""

from __future__ import annotations

from collections.abc import Collection

from .lexer import ExprError
from .model import Kind, RulesError
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

Type = frozenset[str]

BOOL: Type = frozenset({"boolean"})
NUM: Type = frozenset({"number"})
STR: Type = frozenset({"string"})
NULL: Type = frozenset({"null"})
SNAPSHOT: Type = frozenset({"snapshot"})
QUERY: Type = frozenset({"query"})
PRIMITIVE: Type = BOOL | NUM | STR | NULL  # what val() and getPriority() may give
AUTH: Type = frozenset({"map", "null"})  # `auth`: an object, or null when signed out
AUTH_MEMBER: Type = PRIMITIVE | {"map"}  # anything under auth
COMPARABLE = PRIMITIVE | {"map"}  # what == and != may compare

QUERY_MEMBERS: dict[str, Type] = {
    "orderByKey": BOOL,
    "orderByValue": BOOL,
    "orderByPriority": BOOL,
    "orderByChild": STR | NULL,
    "startAt": PRIMITIVE,
    "startAfter": PRIMITIVE,
    "endAt": PRIMITIVE,
    "endBefore": PRIMITIVE,
    "equalTo": PRIMITIVE,
    "limitToFirst": NUM | NULL,
    "limitToLast": NUM | NULL,
}

# Methods by receiver: argument kinds ("string", "strings" an array literal of strings,
# "regex" a regex literal; a trailing "?" optional) and the result.
SNAPSHOT_METHODS: dict[str, tuple[tuple[str, ...], Type]] = {
    "val": ((), PRIMITIVE),
    "child": (("string",), SNAPSHOT),
    "parent": ((), SNAPSHOT),
    "hasChild": (("string",), BOOL),
    "hasChildren": (("strings?",), BOOL),
    "exists": ((), BOOL),
    "getPriority": ((), PRIMITIVE),
    "isNumber": ((), BOOL),
    "isString": ((), BOOL),
    "isBoolean": ((), BOOL),
}
STRING_METHODS: dict[str, tuple[tuple[str, ...], Type]] = {
    "contains": (("string",), BOOL),
    "beginsWith": (("string",), BOOL),
    "endsWith": (("string",), BOOL),
    "replace": (("string", "string"), STR),
    "toLowerCase": ((), STR),
    "toUpperCase": ((), STR),
    "matches": (("regex",), BOOL),
}
NAMES: dict[str, Type] = {
    "auth": AUTH,
    "now": NUM,
    "root": SNAPSHOT,
    "data": SNAPSHOT,
    "newData": SNAPSHOT,
    "query": QUERY,
}


def check(node: Node, kind: Kind, wildcards: Collection[str]) -> None:
    """ExprError (with the column) unless `node` is a well-typed rule of this kind."""
    checker = _Checker(kind, wildcards)
    checker.boolean(node, "the rule")


def _literal_type(value: object) -> Type:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, str):
        return STR
    return NUM


class _Checker:
    def __init__(self, kind: Kind, wildcards: Collection[str]) -> None:
        self.kind = kind
        self.wildcards = wildcards

    def boolean(self, node: Node, what: str) -> None:
        """`node` can be boolean, and so can every branch of a `?:` in it."""
        if isinstance(node, Conditional):
            self.boolean(node.test, "a condition")
            self.boolean(node.then, what)
            self.boolean(node.other, what)
            return
        if "boolean" not in self.type(node):
            raise ExprError(f"{what} must be boolean", node.col)

    def type(self, node: Node) -> Type:  # noqa: C901 - one branch per node type
        if isinstance(node, Literal):
            return _literal_type(node.value)
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Member):
            return self.member(node)
        if isinstance(node, Index):
            obj = self.type(node.obj)
            if "string" not in self.type(node.key):
                raise ExprError("a member's name must be a string", node.key.col)
            if "map" not in obj:
                raise ExprError("no computed members on this value", node.col)
            return AUTH_MEMBER
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Unary):
            if node.op == "!":
                self.boolean(node.operand, "`!`'s operand")
                return BOOL
            if "number" not in self.type(node.operand):
                raise ExprError("`-` needs a number", node.col)
            return NUM
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Conditional):
            self.boolean(node.test, "a condition")
            return self.type(node.then) | self.type(node.other)
        if isinstance(node, ArrayLit):
            raise ExprError("an array is only allowed as hasChildren's argument", node.col)
        raise ExprError("a regular expression is only allowed as matches' argument", node.col)

    def name(self, node: Name) -> Type:
        name = node.name
        if name.startswith("$"):
            if name not in self.wildcards:
                raise ExprError(f"unknown variable `{name}`", node.col)
            return STR
        if name == "newData" and self.kind is Kind.READ:
            raise ExprError("`newData` is not available in a .read rule", node.col)
        if name == "query" and self.kind is not Kind.READ:
            raise ExprError("`query` is only available in a .read rule", node.col)
        found = NAMES.get(name)
        if found is None:
            raise ExprError(f"unknown variable `{name}`", node.col)
        return found

    def member(self, node: Member) -> Type:
        obj = self.type(node.obj)
        if obj == QUERY:
            found = QUERY_MEMBERS.get(node.name)
            if found is None:
                raise ExprError(f"query has no member `{node.name}`", node.col)
            return found
        if node.name == "length" and "string" in obj:
            return NUM
        if "map" in obj:
            return AUTH_MEMBER
        if node.name in SNAPSHOT_METHODS or node.name in STRING_METHODS:
            raise ExprError(f"method `{node.name}` must be called", node.col)
        raise ExprError(f"no member `{node.name}` on this value", node.col)

    def call(self, node: Call) -> Type:
        obj = self.type(node.obj)
        if obj == SNAPSHOT:
            spec = SNAPSHOT_METHODS.get(node.method)
        elif "string" in obj or "map" in obj:
            spec = STRING_METHODS.get(node.method)
        else:
            spec = None
        if spec is None:
            raise ExprError(f"no method `{node.method}` on this value", node.col)
        params, result = spec
        required = sum(1 for p in params if not p.endswith("?"))
        if not required <= len(node.args) <= len(params):
            raise ExprError(f"wrong number of arguments to `{node.method}`", node.col)
        for param, arg in zip(params, node.args, strict=False):
            self.argument(param.rstrip("?"), arg, node.method)
        return result

    def argument(self, param: str, arg: Node, method: str) -> None:
        if param == "regex":
            if not isinstance(arg, Regex):
                raise ExprError(f"`{method}` needs a regular expression literal", arg.col)
            try:
                compile_regex(arg.pattern, arg.flags)
            except RulesError as error:
                raise ExprError(error.message, arg.col) from None
        elif param == "strings":
            if not isinstance(arg, ArrayLit) or not arg.items:
                raise ExprError(f"`{method}` needs an array of strings", arg.col)
            for item in arg.items:
                if "string" not in self.type(item):
                    raise ExprError(f"`{method}` needs an array of strings", item.col)
        elif "string" not in self.type(arg):
            raise ExprError(f"`{method}` needs a string", arg.col)

    def binary(self, node: Binary) -> Type:
        op = node.op
        if op in ("&&", "||"):
            self.boolean(node.left, f"`{op}`'s operand")
            self.boolean(node.right, f"`{op}`'s operand")
            return BOOL
        left, right = self.type(node.left), self.type(node.right)
        if op in ("==", "!=", "===", "!=="):
            if not left & COMPARABLE or not right & COMPARABLE:
                raise ExprError(f"`{op}` cannot compare this value", node.col)
            return BOOL
        if op in ("<", "<=", ">", ">="):
            if not ("number" in left and "number" in right) and not (
                "string" in left and "string" in right
            ):
                raise ExprError(f"`{op}` compares two numbers or two strings", node.col)
            return BOOL
        if op == "+":
            result = set()
            if "number" in left and "number" in right:
                result.add("number")
            joinable = STR | NUM
            if ("string" in left and right & joinable) or ("string" in right and left & joinable):
                result.add("string")
            if not result:
                raise ExprError("`+` adds numbers or joins strings", node.col)
            return frozenset(result)
        if "number" not in left or "number" not in right:
            raise ExprError(f"`{op}` needs numbers", node.col)
        return NUM
