"""The expression language at upload: what parses and type-checks, what is refused and where
(the column), and, with Hypothesis, that no text makes the parser raise anything but RulesError
and no well-typed expression fails at run time with anything but a rule's own runtime error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from thingstash.rules.evaluator import Fail, compile_expression, constant, js_string
from thingstash.rules.model import Env, Kind, QueryInfo, RulesError
from thingstash.rules.parser import parse
from thingstash.rules.snapshots import DictTree, TreeSnapshot
from thingstash.rules.syntax import Binary, Call, Conditional, Literal, Member, Name

WILDCARDS = ["$uid", "$id"]


def env(data: Any = None, auth: Any = None, new: Any = None) -> Env:
    tree = DictTree(data)
    return Env(
        auth=auth,
        now=1_700_000_000_000,
        root=TreeSnapshot(tree),
        data=TreeSnapshot(tree, ("users", "bob")),
        new_data=TreeSnapshot(DictTree(new), ("users", "bob")),
        query=QueryInfo(order_by_key=True),
        wildcards={"$uid": "bob", "$id": "7"},
    )


def refused(source: str, kind: Kind = Kind.READ) -> RulesError:
    with pytest.raises(RulesError) as caught:
        compile_expression(source, kind, WILDCARDS, "rules/users/$uid/.read")
    return caught.value


def test_precedence_follows_javascript() -> None:
    node = parse("a || b && c == d + e * f")
    assert isinstance(node, Binary) and node.op == "||"
    right = node.right
    assert isinstance(right, Binary) and right.op == "&&"
    assert isinstance(parse("a ? b : c ? d : e"), Conditional)


def test_a_method_named_by_a_literal_string_is_a_call() -> None:
    node = parse("root['exists']()")
    assert node == Call(Name("root", 1), "exists", (), 5)
    assert parse("auth.foo['bar']") == Member(Member(Name("auth", 1), "foo", 6), "bar", 9)
    assert parse("1.5e3") == Literal(1500.0, 1)


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("auth.uid == 'a' ; true", 17),
        ("var x = 1", 7),
        ("root = 5", 6),
        ("2 ** 2 == 4", 3),
        ("skies === 'blue'", 1),
        ("true && $nope == 'x'", 9),
        ("root.child('x') == null", 17),
        ("'a' + ", 7),
        ("(true", 6),
        ("'open", 1),
    ],
)
def test_refusals_name_the_place_and_column(source: str, column: int) -> None:
    error = refused(source)
    assert error.place == f"rules/users/$uid/.read, column {column}"
    assert str(error).startswith(f"rules/users/$uid/.read, column {column}: ")


def test_names_depend_on_the_kind_of_rule() -> None:
    refused("newData.exists()", Kind.READ)
    refused("query.orderByKey", Kind.WRITE)
    refused("query.orderByKey", Kind.VALIDATE)
    for kind in (Kind.WRITE, Kind.VALIDATE):
        compile_expression("newData.child('a').val() == data.val()", kind, WILDCARDS)
    compile_expression("query.limitToFirst <= 10", Kind.READ, WILDCARDS)


@pytest.mark.parametrize(
    "source",
    [
        "7",
        "'x'",
        "root.val()",  # may be boolean at run time: allowed
        "now > 0 ? true : 'x'",
    ],
)
def test_the_result_must_be_able_to_be_boolean(source: str) -> None:
    if source == "root.val()":
        compile_expression(source, Kind.READ, WILDCARDS)
    else:
        refused(source)


def test_regular_expressions_are_refused_at_upload_when_re2_or_firebase_would() -> None:
    compile_expression("$uid.matches(/^[a-z]+\\d{0,3}$/i)", Kind.READ, WILDCARDS)
    bad_patterns = ["/a/g", "/(a)\\1/", "/a(?=b)/", "/(?:a)/", "/\\pL/", "/a^b/", "/a|/"]
    for bad in [*bad_patterns, "/" + "a" * 2000 + "/"]:
        refused(f"$uid.matches({bad})")
    refused("$uid.matches('a')")
    refused("root.hasChildren([])")
    refused("/a/ == 1")


def test_runtime_errors_deny_even_under_or_true() -> None:
    rule = compile_expression("(auth.name.length > 0) || true", Kind.READ, WILDCARDS)
    assert not rule.evaluate(env(auth={"uid": "bob"}))
    assert rule.evaluate(env(auth={"uid": "bob", "name": "Bob"}))
    assert constant(True).evaluate(env()) and not constant(False).evaluate(env())
    assert constant(True).source == "true"


def test_values_behave_as_in_firebase() -> None:
    def run(source: str, **kwargs: Any) -> Any:
        return compile_expression(source, Kind.WRITE, WILDCARDS).run(env(**kwargs))

    assert run("data.val() + 1 == 'x1'", data={"users": {"bob": "x"}}) is True
    assert run("newData.val() / 0 + '' == 'NaN'", new={"users": {"bob": 3}}) is True
    assert run("$uid + $id == 'bob7'") is True
    assert run("'\\u00e9'.length == 1 && 'ab'.replace('b', 'c') == 'ac'") is True
    assert run("data.child('a/b').val() == 2", data={"users": {"bob": {"a": {"b": 2}}}}) is True
    assert run("-7 % 3 == -1 && 7 / 2 == 3.5") is True
    assert run("'\\ud83d\\ude00' < '\\uffff' && '\\ud83d\\ude00'.length == 2") is True
    assert run("9007199254740993 + '' == '9007199254740992'") is True
    with pytest.raises(Fail):
        run("data.val() > 1", data={"users": {"bob": "x"}})
    with pytest.raises(Fail):
        run("root.parent().exists()")


@pytest.mark.parametrize(
    ("number", "text"),
    [(1, "1"), (0.5, "0.5"), (1e21, "1e+21"), (1e-7, "1e-7"), (-2.5e-5, "-0.000025"),
     (123456789012.5, "123456789012.5"), (float("inf"), "Infinity"), (1.5e300, "1.5e+300")],
)  # fmt: skip
def test_numbers_join_strings_as_javascript_writes_them(number: float, text: str) -> None:
    assert js_string(number) == text


TOKENS = [
    "auth", "root", "data", "newData", "query", "now", "$uid", "$x", "true", "false", "null",
    "1", "2.5", "'a'", '"b"', "/a/", "/a/i", "(", ")", "[", "]", ".", ",", "?", ":", "!", "-",
    "+", "*", "/", "%", "==", "===", "!=", "<", ">=", "&&", "||", "=", ";", "val", "child",
    "contains", "matches", "length", "hasChildren", "orderByKey", "var", "'", "\\", "**",
]  # fmt: skip


@given(st.text(max_size=200))
def test_any_text_raises_only_rules_errors(text: str) -> None:
    for kind in Kind:
        try:
            compile_expression(text, kind, WILDCARDS)
        except RulesError:
            pass


@given(st.lists(st.sampled_from(TOKENS), max_size=30), st.sampled_from(["", " "]))
def test_any_token_sequence_raises_only_rules_errors(tokens: list[str], sep: str) -> None:
    for kind in Kind:
        try:
            compile_expression(sep.join(tokens), kind, WILDCARDS)
        except RulesError:
            pass


def _typed() -> st.SearchStrategy[str]:
    """Well-typed boolean expressions over strings, numbers and snapshots."""
    word = st.text(alphabet="abAB/ 1", max_size=4).map(lambda s: json.dumps(s))
    path = st.sampled_from(["'a'", "'a/b'", "$uid", "auth.uid", "'users/bob'"])
    snapshot = st.recursive(
        st.sampled_from(["root", "data", "newData"]),
        lambda inner: st.one_of(
            st.builds("{}.child({})".format, inner, path), inner.map("{}.parent()".format)
        ),
        max_leaves=3,
    )
    leaf_str = st.one_of(word, st.sampled_from(["$uid", "auth.uid", "auth.a.b"]))
    leaf_str = st.one_of(leaf_str, snapshot.map("{}.val()".format))
    strings = st.recursive(
        leaf_str,
        lambda s: st.one_of(
            st.builds("({} + {})".format, s, s),
            s.map("{}.toLowerCase()".format),
            st.builds("{}.replace({}, {})".format, s, s, s),
        ),
        max_leaves=4,
    )
    leaf_num = st.one_of(
        st.integers(-5, 2**60).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.sampled_from(["now", "auth.n", "query.limitToFirst"]),
        strings.map("{}.length".format),
        snapshot.map("{}.getPriority()".format),
    )
    numbers = st.recursive(
        leaf_num,
        lambda n: (
            st.builds("({} {} {})".format, n, st.sampled_from(["+", "-", "*", "/", "%"]), n)
            | n.map("-{}".format)
        ),
        max_leaves=4,
    )
    leaf_bool = st.one_of(
        st.sampled_from(["true", "false", "auth.ok", "query.orderByKey"]),
        st.builds("({} == {})".format, strings, numbers),
        st.builds("({} < {})".format, numbers, numbers),
        st.builds("({} >= {})".format, strings, strings),
        st.builds("{}.contains({})".format, strings, strings),
        st.builds("{}.matches(/^a+b?$/i)".format, strings),
        st.builds("{}.exists()".format, snapshot),
        st.builds("{}.hasChildren([{}, 'a'])".format, snapshot, strings),
        st.builds("{}.hasChild({})".format, snapshot, strings),
    )
    return st.recursive(
        leaf_bool,
        lambda b: st.one_of(
            st.builds("({} && {})".format, b, b),
            st.builds("({} || {})".format, b, b),
            b.map("!{}".format),
            st.builds("({} ? {} : {})".format, b, b, b),
        ),
        max_leaves=6,
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats() | st.text("ab", max_size=3),
    lambda j: st.dictionaries(st.sampled_from(["a", "b", "users", "bob", ".priority"]), j),
    max_leaves=8,
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(_typed(), JSON, JSON, st.none() | st.dictionaries(st.sampled_from(["uid", "a", "n"]), JSON))
def test_well_typed_expressions_fail_only_as_rules_do(
    source: str, data: Any, new: Any, auth: Any
) -> None:
    assume("query" not in source or "newData" not in source)
    rule = compile_expression(source, Kind.WRITE if "newData" in source else Kind.READ, WILDCARDS)
    try:
        value = rule.run(env(data=data, new=new, auth=auth))
    except Fail:
        value = None
    assert value is None or type(value) is bool
    assert rule.evaluate(env(data=data, new=new, auth=auth)) is (value is True)


@pytest.mark.parametrize(
    "source",
    ["1" + " + 1" * 3000 + " == 1", "!" * 3000 + "true", "(" * 3000 + "true" + ")" * 3000,
     "auth" + ".a" * 20000 + " == 1", " && ".join(["true"] * 200)],
)  # fmt: skip
def test_too_deep_a_tree_is_refused_not_a_stack_overflow(source: str) -> None:
    assert "nested too deeply" in refused(source).message


def test_a_long_chain_within_the_cap_runs() -> None:
    rule = compile_expression(" && ".join(["auth.uid == $uid"] * 100), Kind.READ, WILDCARDS)
    assert rule.evaluate(env(auth={"uid": "bob"}))


def test_javascript_unicode_escapes_in_patterns() -> None:
    rule = compile_expression("$uid.matches(/^\\u0062\\u006Fb$/)", Kind.READ, WILDCARDS)
    assert rule.evaluate(env())
