"""The order of queries, without Redis: byte keys that compare as Firebase orders JSON values,
ranges of them, cursors, and the parameters of a query (API.md, "Queries").

Every property is checked against a brute-force Python comparison that spells out Firebase's
order the plain way (kind first, then the value, then the name)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingstash.core import answers, indexes, ordering
from thingstash.core.queries import BadQuery, Query, parse_query


def firebase_order(value: Any, name: str) -> tuple[Any, ...]:
    """Firebase's order, brute force: missing/null, false, true, numbers by value (as floats:
    ints past 2^53 may tie, API.md says so), strings by code point, then arrays and objects;
    ties by name (by code point too)."""
    if value is None:
        return (0, 0, name)
    if value is False:
        return (1, 0, name)
    if value is True:
        return (2, 0, name)
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf if value > 0 else -math.inf
        return (3, number, name)
    if isinstance(value, str):
        return (4, value, name)
    return (5, 0, name)


# JSON strings can hold any code point but a lone surrogate (orjson refuses them).
unicode_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8)
names = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/"),
    min_size=1,
    max_size=6,
)
numbers = st.one_of(
    st.integers(-(2**53), 2**53),
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 0.0, 1, 1.0, -1, 2**53, 2**53 + 1, 1e308, -1e308, 5e-324]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, unicode_text, st.sampled_from(["", "\0"]))
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=2),
    st.dictionaries(unicode_text, scalars, max_size=2),
)


def members_of(things: dict[str, Any]) -> list[bytes]:
    return sorted(ordering.member(ordering.sort_key(v), n) for n, v in things.items())


@settings(max_examples=400)
@given(st.dictionaries(names, values, min_size=1, max_size=30))
def test_members_order_as_firebase_orders_values_ties_by_name(things: dict[str, Any]) -> None:
    by_bytes = [ordering.split_member(m)[1] for m in members_of(things)]
    brute = sorted(things, key=lambda n: firebase_order(things[n], n))
    assert by_bytes == brute


@settings(max_examples=300)
@given(values, values)
def test_two_keys_compare_as_their_values(a: Any, b: Any) -> None:
    ka, kb = ordering.sort_key(a), ordering.sort_key(b)
    fa, fb = firebase_order(a, ""), firebase_order(b, "")
    assert (ka < kb) == (fa < fb)
    assert (ka == kb) == (fa == fb)


@given(values, names)
def test_a_member_splits_back_into_its_key_and_name(value: Any, name: str) -> None:
    key = ordering.sort_key(value)
    assert ordering.split_member(ordering.member(key, name)) == (key, name)


def test_the_kinds_come_in_firebase_order() -> None:
    row = [None, False, True, -math.inf, -1e308, -1, -0.5, 0, 0.5, 1, 2**53, 10**400]
    row += ["", "\0", "A", "a", "a\0", "a\x01", "ab", "é", "\uffff", "😀", [], {}]
    keys = [ordering.sort_key(v) for v in row]
    assert keys == sorted(keys)
    assert len(set(keys[:-2])) == len(keys) - 2  # only the array and the object tie
    assert ordering.sort_key(-0.0) == ordering.sort_key(0) == ordering.sort_key(0.0)
    assert ordering.sort_key(1) == ordering.sort_key(1.0)
    # past 2^53 ints take the nearest float: documented ties
    assert ordering.sort_key(2**53) == ordering.sort_key(2**53 + 1)


def test_strings_order_by_code_point_not_utf16() -> None:
    # U+FFFF is above U+1F600 in UTF-16 code units, below it by code point (and in UTF-8)
    assert ordering.sort_key("\uffff") < ordering.sort_key("😀")


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x07", b"\x04\x00", b"\x05abc", b"\x05a\x00\x01", b"\x01", b"\x01a/b", b"\x01\xff"],
)
def test_a_forged_member_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        ordering.split_member(raw)


@settings(max_examples=300)
@given(
    st.dictionaries(names, values, min_size=1, max_size=25),
    st.one_of(st.none(), scalars),
    st.one_of(st.none(), scalars),
    st.booleans(),
)
def test_a_range_holds_exactly_the_values_between_its_bounds(
    things: dict[str, Any], start: Any, end: Any, desc: bool
) -> None:
    # None here means "no bound"; a null bound is covered by test_null_is_a_bound.
    bounds = ordering.lex_range(
        None if start is None else ordering.sort_key(start),
        None if end is None else ordering.sort_key(end),
        desc,
    )
    for name, value in things.items():
        mine = firebase_order(value, "")
        low, high = (end, start) if desc else (start, end)
        expected = (low is None or firebase_order(low, "") <= mine) and (
            high is None or mine <= firebase_order(high, "")
        )
        member = ordering.member(ordering.sort_key(value), name)
        assert ordering.in_range(member, bounds) == expected, (name, value)


def test_null_is_a_bound() -> None:
    null = ordering.sort_key(None)
    bounds = ordering.lex_range(null, null, False)
    assert ordering.in_range(ordering.member(null, "a"), bounds)
    assert not ordering.in_range(ordering.member(ordering.sort_key(False), "a"), bounds)


def test_cursors_round_trip_and_refuse_junk() -> None:
    raw = ordering.member(ordering.sort_key("x\0y"), "name é")
    assert ordering.decode_cursor(ordering.encode_cursor(raw)) == raw
    for junk in ["", "a b", "é", "a=", "x" * 5000]:
        with pytest.raises(ValueError):
            ordering.decode_cursor(junk)


@pytest.mark.parametrize(
    "document, path, expected",
    [
        ({"a": {"b": 3}}, "a/b", 3),
        ({"a": {"b": 3}}, "a/c", None),
        ({"a": 3}, "a/b", None),
        ({"a": [10, 20]}, "a/1", 20),
        ({"a": [10, 20]}, "a/01", None),
        ({"a": [10, 20]}, "a/2", None),
        ({"a": None}, "a", None),
        ({"a": {"": 1}}, "a", {"": 1}),
    ],
)
def test_field_values(document: Any, path: str, expected: Any) -> None:
    assert ordering.field_value(document, ordering.parse_field(path).segments) == expected


@pytest.mark.parametrize(
    "path, says",
    [
        ("", "names a field"),
        ("a//b", "empty segment"),
        ("/a", "empty segment"),
        ("a/", "empty segment"),
        ("$score", "$name"),
        ("ttl", "$updated"),
        ("last_updated", "$updated"),
        ("a\x01", "control"),
        ("x" * 600, "512 bytes"),
        ("/".join("a" * 40), "32 segments"),
    ],
)
def test_bad_fields_say_what_to_send(path: str, says: str) -> None:
    with pytest.raises(ordering.BadField, match=None) as caught:
        ordering.parse_field(path)
    assert says in str(caught.value)


# -- parameters --------------------------------------------------------------------------------


def ask(**params: str) -> Query | None:
    return parse_query({name: [value] for name, value in params.items()})


def test_a_listing_is_not_a_query() -> None:
    assert ask() is None
    assert ask(limit="5", cursor="abc", values="true") is None
    assert ask(count="false") is None


def test_a_full_query_is_typed() -> None:
    query = ask(order_by="stats/level", desc="true", limit="7", start_at="10", end_at='"x"')
    assert query is not None and query.field is not None
    assert query.field.segments == ("stats", "level")
    assert (query.desc, query.limit, query.values, query.count) == (True, 7, False, False)
    assert query.start == ordering.sort_key(10) and query.end == ordering.sort_key("x")
    assert ask(count="true") == Query(None, count=True)
    equal = ask(order_by="a", equal_to="null")
    assert equal is not None and equal.start == equal.end == ordering.sort_key(None)
    assert ask(order_by="$name", start_at='"b"') == Query(ordering.Field("$name"), start=b"b")


@pytest.mark.parametrize(
    "params, title, says",
    [
        ({"order_by": "a", "equal_to": "1", "start_at": "0"}, "equal_to with a range", "either"),
        ({"order_by": "a", "equal_to": "1", "end_at": "0"}, "equal_to with a range", "either"),
        ({"order_by": "a", "around": "x", "cursor": "AQ"}, "around with a cursor", "drop cursor"),
        ({"order_by": "a", "around": "x", "start_at": "1"}, "around with a", "drop start_at"),
        ({"order_by": "a", "around": "x", "count": "true"}, "around with count", "one of them"),
        ({"order_by": "a", "around": "x/y"}, "bad around", "no /"),
        ({"order_by": "a", "count": "true", "values": "true"}, "count with values", "drop"),
        ({"order_by": "a", "count": "true", "limit": "5"}, "count with limit", "drop limit"),
        ({"count": "true", "values": "true"}, "count takes no page", "drop values"),
        ({"order_by": "a", "start_at": "abc"}, "bad start_at", 'start_at="10"'),
        ({"order_by": "a", "end_at": "{"}, "bad end_at", "JSON value"),
        ({"order_by": "a", "equal_to": "[1]"}, "bad equal_to", "not an array"),
        ({"order_by": "$name", "start_at": "3"}, "bad start_at", "name in quotes"),
        ({"order_by": "a//b"}, "bad order_by", "empty segment"),
        ({"order_by": ""}, "bad order_by", "names a field"),
        ({"order_by": "a", "limit": "0"}, "bad limit", "from 1 to 1000"),
        ({"order_by": "a", "limit": "1001"}, "bad limit", "from 1 to 1000"),
        ({"order_by": "a", "desc": "yes"}, "bad desc", "true or false"),
        ({"order_by": "a", "cursor": "!!"}, "bad cursor", "`next`"),
        ({"order_by": "a", "cursor": "AQ"}, "bad cursor", "`next`"),  # \x01 alone: no name
        ({"start_at": "1"}, "order_by missing", "add order_by"),
        ({"desc": "true"}, "order_by missing", "order_by=$name"),
    ],
)
def test_each_bad_combination_says_what_to_send(
    params: dict[str, str], title: str, says: str
) -> None:
    with pytest.raises(BadQuery) as caught:
        ask(**params)
    assert caught.value.title.startswith(title)
    assert says in caught.value.detail


def test_a_repeated_parameter_is_refused() -> None:
    with pytest.raises(BadQuery, match="at most once"):
        parse_query({"order_by": ["a", "b"]})


# -- answers over members in order, against brute force ----------------------------------------


@settings(max_examples=300)
@given(
    things=st.dictionaries(names, scalars, min_size=0, max_size=40),
    start=st.one_of(st.none(), scalars),
    end=st.one_of(st.none(), scalars),
    desc=st.booleans(),
    limit=st.integers(1, 12),
)
def test_pages_ranks_and_counts_match_brute_force(
    things: dict[str, Any], start: Any, end: Any, desc: bool, limit: int
) -> None:
    field = ordering.parse_field("score")
    params = {"order_by": "score", "desc": str(desc).lower(), "limit": str(limit)}
    if start is not None:
        params["start_at"] = ordering_json(start)
    if end is not None:
        params["end_at"] = ordering_json(end)
    query = ask(**params)
    assert query is not None and query.field == field
    members = members_of(things)

    whole = sorted(things, key=lambda n: firebase_order(things[n], n), reverse=desc)
    rank_of = {name: i + 1 for i, name in enumerate(whole)}

    def within(name: str) -> bool:
        mine = firebase_order(things[name], "")
        ok_start = start is None or (
            mine <= firebase_order(start, "") if desc else mine >= firebase_order(start, "")
        )
        ok_end = end is None or (
            mine >= firebase_order(end, "") if desc else mine <= firebase_order(end, "")
        )
        return ok_start and ok_end

    expected = [n for n in whole if within(n)]
    assert answers.count_in(members, query) == len(expected)

    seen: list[str] = []
    for _ in range(len(things) + 2):
        page = answers.window(members, query)
        page_names = [ordering.split_member(m)[1] for m in page.members]
        assert [rank_of[n] for n in page_names] == list(page.ranks())
        seen += page_names
        if not page.more:
            break
        query = Query(
            query.field, query.desc, query.limit, page.members[-1], query.start, query.end
        )
    assert seen == expected


def ordering_json(value: Any) -> str:
    from thingstash.core import documents

    return documents.dumps(value).decode()


@settings(max_examples=200)
@given(
    things=st.dictionaries(names, scalars, min_size=1, max_size=40),
    desc=st.booleans(),
    limit=st.integers(1, 12),
    data=st.data(),
)
def test_around_centres_the_page_on_the_thing(
    things: dict[str, Any], desc: bool, limit: int, data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(sorted(things)))
    query = Query(ordering.parse_field("v"), desc, limit, around=target)
    members = members_of(things)
    page = answers.window_around(
        members, query, ordering.member(ordering.sort_key(things[target]), target)
    )
    assert page is not None
    whole = sorted(things, key=lambda n: firebase_order(things[n], n), reverse=desc)
    at = whole.index(target)
    names_seen = [ordering.split_member(m)[1] for m in page.members]
    assert target in names_seen
    assert names_seen == whole[page.first_rank - 1 : page.first_rank - 1 + limit]
    assert len(names_seen) == min(limit, len(whole))
    # centred where the order leaves room on both sides
    if (limit - 1) // 2 <= at < len(whole) - limit // 2:
        assert names_seen.index(target) == (limit - 1) // 2


def test_around_a_name_not_there_is_none() -> None:
    members = members_of({"a": 1})
    query = Query(ordering.parse_field("v"), around="b")
    assert answers.window_around(members, query, ordering.member(ordering.sort_key(1), "b")) is None


@settings(max_examples=200)
@given(
    st.lists(names, unique=True, max_size=30),
    st.one_of(st.none(), names),
    st.one_of(st.none(), names),
    st.booleans(),
    st.integers(1, 8),
)
def test_name_order_pages_and_bounds(
    things: list[str], start: str | None, end: str | None, desc: bool, limit: int
) -> None:
    params = {"order_by": "$name", "desc": str(desc).lower(), "limit": str(limit)}
    if start is not None:
        params["start_at"] = ordering_json(start)
    if end is not None:
        params["end_at"] = ordering_json(end)
    query = ask(**params)
    assert query is not None
    members = sorted(n.encode() for n in things)
    whole = sorted(things, reverse=desc)
    low, high = (end, start) if desc else (start, end)
    expected = [n for n in whole if (low is None or n >= low) and (high is None or n <= high)]
    seen: list[str] = []
    while True:
        page = answers.window(members, query)
        assert [whole.index(m.decode()) + 1 for m in page.members] == list(page.ranks())
        seen += [m.decode() for m in page.members]
        if not page.more:
            break
        query = Query(query.field, desc, limit, page.members[-1], query.start, query.end)
    assert seen == expected
    assert answers.count_in(members, query) == len(expected)


# -- index declarations ------------------------------------------------------------------------


def test_an_index_covers_its_folder_and_pattern_matches() -> None:
    exact = indexes.Index("i1", "games/g1/scores/", "score", 0, indexes.READY)
    pattern = indexes.Index("i2", "games/*/scores/", "score", 0, indexes.READY)
    top = indexes.Index("i3", "", "score", 0, indexes.READY)
    assert exact.covers("games/g1/scores/") and not exact.covers("games/g2/scores/")
    assert pattern.covers("games/g2/scores/") and not pattern.covers("games/g2/x/scores/")
    assert not pattern.covers("games/g2/") and top.covers("") and not top.covers("a/")
    score = ordering.parse_field("score")
    assert indexes.covering([exact, pattern], "games/g9/scores/", score) is pattern
    building = indexes.Index("i4", "x/", "score", 0)
    assert indexes.covering([building], "x/", score) is None  # not ready: not used
    assert indexes.Index.from_json("i2", pattern.to_json()) == pattern


@pytest.mark.parametrize(
    "text, expected", [("games/*/scores", "games/*/scores/"), ("/", ""), ("", ""), ("a/", "a/")]
)
def test_index_folders_are_normalised(text: str, expected: str) -> None:
    assert indexes.parse_index_folder(text) == expected


@pytest.mark.parametrize(
    "text, says",
    [("a//b/", "empty segment"), ("g*/", "one whole segment"), ("a/../", "'..'"), ("_x/", "_")],
)
def test_bad_index_folders_say_why(text: str, says: str) -> None:
    with pytest.raises(BadQuery) as caught:
        indexes.parse_index_folder(text)
    assert says in caught.value.detail
