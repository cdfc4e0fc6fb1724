"""An expression's text to its tree (syntax.py): a Pratt parser over lexer.py's tokens, with
JavaScript's precedence. Only what Firebase's rules accept parses: no assignment, no `;`, no
statements, calls only of methods. Errors are RulesError naming the 1-based column."""

from __future__ import annotations

from .lexer import ExprError, Token, tokenize
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

MAX_SOURCE = 64 * 1024  # characters in one expression
MAX_DEPTH = 128  # depth of the tree (the checker and the evaluator recurse on it)

# Binding power of the infix operators; `?:` binds loosest (1), members and calls tightest.
_INFIX = {
    "||": 3, "&&": 4,
    "==": 5, "!=": 5, "===": 5, "!==": 5,
    "<": 6, "<=": 6, ">": 6, ">=": 6,
    "+": 7, "-": 7,
    "*": 8, "/": 8, "%": 8,
}  # fmt: skip
_UNARY_POWER = 9
_WORDS = {"true": True, "false": False, "null": None}


def parse(source: str) -> Node:
    """The tree of one expression; RulesError (with its column) when it is not one."""
    if len(source) > MAX_SOURCE:
        raise ExprError(f"expression longer than {MAX_SOURCE} characters", 1)
    parser = _Parser(tokenize(source))
    node = parser.expression(0)
    parser.expect_end()
    return node


def _fail(message: str, token: Token) -> ExprError:
    return ExprError(message, token.col)


def _describe(token: Token) -> str:
    return "end of expression" if token.kind == "end" else f"`{token.text}`"


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0  # the parser's own recursion
        self.depths: dict[int, int] = {}  # id(node) -> depth of the tree under it

    def made(self, node: Node, *children: Node) -> Node:
        """`node`, its depth recorded; too deep a tree is refused here rather than exhausting
        the stack of the checker or of a request."""
        depth = 1 + max((self.depths.get(id(child), 1) for child in children), default=0)
        if depth > MAX_DEPTH:
            raise ExprError("expression nested too deeply", node.col)
        self.depths[id(node)] = depth
        return node

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def take(self, op: str) -> Token:
        token = self.next()
        if token.kind != "op" or token.text != op:
            raise _fail(f"expected `{op}`, found {_describe(token)}", token)
        return token

    def at(self, op: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text == op

    def expect_end(self) -> None:
        token = self.peek()
        if token.kind != "end":
            raise _fail(f"unexpected {_describe(token)}", token)

    def expression(self, power: int) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _fail("expression nested too deeply", self.peek())
        left = self.prefix()
        while True:
            token = self.peek()
            if token.kind != "op":
                break
            if token.text == "?" and power <= 1:
                self.next()
                then = self.expression(1)
                self.take(":")
                other = self.expression(1)
                left = self.made(Conditional(left, then, other, token.col), left, then, other)
                continue
            bp = _INFIX.get(token.text)
            if bp is None or bp <= power:
                break
            self.next()
            right = self.expression(bp)
            left = self.made(Binary(token.text, left, right, token.col), left, right)
        self.depth -= 1
        return left

    def prefix(self) -> Node:
        token = self.next()
        node: Node
        if token.kind == "number":
            node = Literal(_number(token.text), token.col)
        elif token.kind == "string":
            node = Literal(token.text, token.col)
        elif token.kind == "regex":
            node = Regex(token.text, token.flags, token.col)
        elif token.kind == "name":
            if token.text in _WORDS:
                node = Literal(_WORDS[token.text], token.col)
            else:
                node = Name(token.text, token.col)
        elif token.kind == "op" and token.text in ("!", "-"):
            operand = self.expression(_UNARY_POWER)
            node = self.made(Unary(token.text, operand, token.col), operand)
        elif token.kind == "op" and token.text == "(":
            node = self.expression(0)
            self.take(")")
        elif token.kind == "op" and token.text == "[":
            items = self.items("]")
            node = self.made(ArrayLit(items, token.col), *items)
        else:
            raise _fail(f"unexpected {_describe(token)}", token)
        if isinstance(node, Literal | Name | Regex):
            self.depths[id(node)] = 1  # a leaf (an id may be a discarded node's)
        return self.postfix(node)

    def items(self, close: str) -> tuple[Node, ...]:
        items: list[Node] = []
        if not self.at(close):
            items.append(self.expression(0))
            while self.at(","):
                self.next()
                items.append(self.expression(0))
        self.take(close)
        return tuple(items)

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token.kind != "op":
                return node
            if token.text == ".":
                self.next()
                name = self.next()
                if name.kind != "name":
                    raise _fail(f"expected a name after `.`, found {_describe(name)}", name)
                node = self.made(Member(node, name.text, name.col), node)
            elif token.text == "[":
                self.next()
                key = self.expression(0)
                self.take("]")
                if isinstance(key, Literal) and isinstance(key.value, str):
                    node = self.made(Member(node, key.value, token.col), node)
                else:
                    node = self.made(Index(node, key, token.col), node, key)
            elif token.text == "(":
                if not isinstance(node, Member):
                    raise _fail("only methods can be called", token)
                self.next()
                args = self.items(")")
                node = self.made(Call(node.obj, node.name, args, node.col), node.obj, *args)
            else:
                return node


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE"):
        return float(text)
    value = int(text)
    return value if value <= 2**53 else float(value)
