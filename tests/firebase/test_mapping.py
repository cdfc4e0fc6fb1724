"""The Firebase face's pure core: the mapping (firebase/mapping.py) and the in-value query
(firebase/query.py), by properties over generated values (Hypothesis)."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingstash.core import documents
from thingstash.core.pushids import push_id
from thingstash.firebase import layout, mapping
from thingstash.firebase import query as fbquery
from thingstash.firebase.errors import Refusal
from thingstash.web.firebase.errors import status_of

keys = st.one_of(
    st.sampled_from(["a", "b", "c", "0", "1", "2", "10", "-3", "x y", "é"]),
    st.text(
        alphabet=st.characters(blacklist_characters=".$#[]/", blacklist_categories=("Cc", "Cs")),
        min_size=1,
        max_size=6,
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
objects_only = st.recursive(
    st.one_of(st.booleans(), st.integers(-100, 100), st.text(max_size=3)),
    lambda inner: st.dictionaries(keys, inner, min_size=1, max_size=3),
    max_leaves=10,
)
relatives = st.lists(keys, min_size=1, max_size=4).map(tuple)


def _holds_no_empty_or_null(value: Any) -> bool:
    if isinstance(value, dict):
        return bool(value) and all(
            v is not None and _holds_no_empty_or_null(v) for v in value.values()
        )
    if isinstance(value, list):
        return (
            bool(value)
            and value[-1] is not None
            and all(v is None or _holds_no_empty_or_null(v) for v in value)
        )
    return True


@given(values)
def test_normalize_is_idempotent_and_leaves_no_empty_objects(value: Any) -> None:
    normalized = mapping.normalize(value)
    assert mapping.normalize(normalized) == normalized
    assert normalized is None or _holds_no_empty_or_null(normalized)


@given(values)
def test_wrap_then_unwrap_is_the_value(value: Any) -> None:
    normalized = mapping.normalize(value)
    if normalized is not None:
        assert isinstance(mapping.wrap(normalized), dict)
        assert mapping.unwrap(mapping.wrap(normalized)) == normalized


@pytest.mark.parametrize("key", ["a.b", "a$", "#", "[x]", "a/b", "tab\t", "", "\x7f"])
def test_bad_keys_are_refused_in_bodies_and_paths(key: str) -> None:
    with pytest.raises(Refusal) as refused:
        mapping.normalize({"ok": {key: 1}})
    assert status_of(refused.value) == 400 and refused.value.message.startswith("Invalid data")
    if key and "/" not in key:
        with pytest.raises(Refusal):
            mapping.parse_location(f"ok/{key}")


def test_value_and_priority_in_bodies() -> None:
    assert mapping.normalize({".value": 3, ".priority": 1}) == 3
    assert mapping.normalize({"a": {".value": "x"}, ".priority": 2}) == {"a": "x"}
    with pytest.raises(Refusal):
        mapping.normalize({".value": 3, "other": 1})
    assert mapping.normalize({"t": {".sv": "timestamp"}}) == {"t": {".sv": "timestamp"}}


@given(objects_only, relatives, objects_only)
def test_set_member_then_get_member(value: Any, relative: tuple[str, ...], new: Any) -> None:
    updated = mapping.set_member(value, relative, new)
    assert mapping.get_member(updated, relative) == new


@given(objects_only, relatives, relatives, objects_only)
def test_set_member_leaves_other_places_alone(
    value: Any, here: tuple[str, ...], there: tuple[str, ...], new: Any
) -> None:
    # Places that are not above or below one another do not see each other's writes.
    if here[: len(there)] == there or there[: len(here)] == here:
        return
    before = mapping.get_member(value, there)
    assert mapping.get_member(mapping.set_member(value, here, new), there) == before


@given(objects_only, relatives)
def test_deleting_a_member_removes_it_and_empty_parents(value: Any, relative: Any) -> None:
    updated = mapping.set_member(value, relative, None)
    assert mapping.get_member(updated, relative) is None
    assert updated is None or _holds_no_empty_or_null(updated)


def test_members_of_arrays() -> None:
    assert mapping.set_member([1, 2, 3], ("1",), 9) == [1, 9, 3]
    assert mapping.set_member([1, 2], ("2",), 3) == [1, 2, 3]
    assert mapping.set_member([1, 2], ("5",), 3) == {"0": 1, "1": 2, "5": 3}
    assert mapping.set_member([1, 2, 3], ("2",), None) == [1, 2]
    assert mapping.set_member([1, 2, 3], ("0",), None) == [None, 2, 3]
    assert mapping.get_member({"a": [{"b": 1}]}, ("a", "0", "b")) == 1
    assert mapping.get_member([1], ("01",)) is None


@given(st.one_of(scalars, objects_only), st.dictionaries(keys, objects_only, max_size=3))
def test_overlay_children_win_and_members_stay(own: Any, children: dict[str, Any]) -> None:
    result = mapping.overlay(own, children)
    if not children:
        assert result == own
        return
    for name, child in children.items():
        assert result[name] == child
    if isinstance(own, dict):
        for name, member in own.items():
            if name not in children:
                assert result[name] == member


@given(st.dictionaries(keys, values, max_size=5))
def test_etag_ignores_key_order_and_tells_values_apart(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert mapping.etag(value) == mapping.etag(reordered)
    assert mapping.etag(value) != mapping.etag({**value, "\u2603new": 1})
    assert mapping.etag(None) == mapping.etag(None) != mapping.etag(0)


def test_shallow() -> None:
    assert mapping.shallow({"a": {"b": 1}, "c": 2}) == {"a": True, "c": True}
    assert mapping.shallow([5, None, 6]) == {"0": True, "2": True}
    assert mapping.shallow("x") == "x"


# -- queries -------------------------------------------------------------------------------------


def _kind(value: Any) -> int:
    if value is None:
        return 0
    if value is False:
        return 1
    if value is True:
        return 2
    if isinstance(value, int | float):
        return 3
    if isinstance(value, str):
        return 4
    return 5


def _compare_keys(a: str, b: str) -> int:
    """Firebase's key order, written out plainly: 32-bit integer keys first, by number."""

    def as_int(key: str) -> int | None:
        try:
            number = int(key)
        except ValueError:
            return None
        ok = str(number) == key and -(2**31) <= number < 2**31
        return number if ok else None

    x, y = as_int(a), as_int(b)
    if x is not None and y is not None:
        return (x > y) - (x < y)
    if x is not None:
        return -1
    if y is not None:
        return 1
    return (a > b) - (a < b)


def _compare_values(a: Any, b: Any) -> int:
    if _kind(a) != _kind(b):
        return _kind(a) - _kind(b)
    if _kind(a) in (3, 4):
        # Numbers compare as floats (ordering.py: ints past 2^53 take the nearest float).
        x, y = (float(a), float(b)) if _kind(a) == 3 else (a, b)
        return (x > y) - (x < y)
    return 0


def _model_order(order_by: str, entries: list[tuple[str, Any]]) -> list[str]:
    def compare(left: tuple[str, Any], right: tuple[str, Any]) -> int:
        if order_by != "$key":
            pick = (
                (lambda v: v)
                if order_by == "$value"
                else (lambda v: v.get(order_by) if isinstance(v, dict) else None)
            )
            by_value = _compare_values(pick(left[1]), pick(right[1]))
            if by_value:
                return by_value
        return _compare_keys(left[0], right[0])

    return [key for key, _ in sorted(entries, key=functools.cmp_to_key(compare))]


small_numbers = st.one_of(st.integers(-50, 50), st.floats(-50, 50, allow_nan=False))
children_values = st.one_of(
    st.none(),
    st.booleans(),
    small_numbers,
    st.text(max_size=3),
    st.dictionaries(st.sampled_from(["n", "m"]), st.one_of(small_numbers, st.text(max_size=2))),
)
child_sets = st.dictionaries(
    st.one_of(st.integers(-5, 20).map(str), st.text("abc01", min_size=1, max_size=3)),
    children_values,
    max_size=8,
)


@settings(max_examples=300)
@given(
    child_sets,
    st.sampled_from(["$key", "$value", "n"]),
    st.one_of(st.none(), st.integers(1, 10)),
    st.booleans(),
)
def test_query_order_and_limits_match_a_plain_model(
    value: dict[str, Any], order_by: str, limit: int | None, last: bool
) -> None:
    present = [(k, v) for k, v in value.items() if v is not None]
    query = fbquery.Query(
        order_by,
        () if order_by.startswith("$") else (order_by,),
        first=None if last else limit,
        last=limit if last else None,
    )
    expected = _model_order(order_by, present)
    if limit is not None:
        expected = expected[-limit:] if last else expected[:limit]
    answer = fbquery.run(query, {k: v for k, v in present})
    assert list(answer) == expected


@settings(max_examples=200)
@given(child_sets, small_numbers, small_numbers)
def test_value_bounds_keep_exactly_the_values_between(
    value: dict[str, Any], low: float, high: float
) -> None:
    present = {k: v for k, v in value.items() if v is not None}
    query = fbquery.parse_query(
        {"orderBy": ['"$value"'], "startAt": [repr(float(low))], "endAt": [repr(float(high))]}
    )
    assert query is not None
    answer = fbquery.run(query, present)
    for key, child in present.items():
        inside = isinstance(child, int | float) and not isinstance(child, bool)
        inside = inside and float(low) <= child <= float(high)
        assert (key in answer) == inside


def test_key_order_puts_32_bit_integers_first() -> None:
    keys_in_order = ["-2147483648", "-1", "0", "2", "10", "2147483647", "-0", "01", "2147483648"]
    answer = fbquery.run(fbquery.Query("$key"), dict.fromkeys(reversed(keys_in_order), 1))
    assert list(answer) == ["-2147483648", "-1", "0", "2", "10", "2147483647"] + sorted(
        ["-0", "01", "2147483648"]
    )


def test_query_over_arrays_and_scalars() -> None:
    assert fbquery.run(fbquery.Query("$value", last=1), [3, None, 1]) == {"0": 3}
    assert fbquery.run(fbquery.Query("$key"), "text") == "text"
    assert fbquery.run(fbquery.Query("$key"), None) is None


def test_deleting_below_a_scalar_leaves_it() -> None:
    assert mapping.set_member({"a": 0}, ("a", "b"), None) == {"a": 0}
    assert mapping.set_member("text", ("x",), None) == "text"


# -- the layout (firebase/layout.py) -------------------------------------------------------------

layout_keys = st.one_of(keys, st.sampled_from(["-Aaaaaaaaaaaaaaaaaaa", "-B0123456789_-abcdef"]))
layout_values = st.recursive(
    st.one_of(st.booleans(), st.integers(-100, 100), st.text(max_size=40)),
    lambda inner: st.dictionaries(layout_keys, inner, min_size=1, max_size=4),
    max_leaves=16,
)


def _put_together(own: Any, below: list[tuple[tuple[str, ...], Any]], at: int) -> Any:
    tree = own
    for location, value in sorted(below, key=lambda place: len(place[0])):
        tree = mapping.set_member(tree, location[at:], value)
    return tree


@given(layout_values, st.sampled_from([64, 200, 4096]))
def test_a_layout_holds_the_value_in_small_things(value: Any, limit: int) -> None:
    value = mapping.normalize(value)
    try:
        own, below = layout.lay_out(("r",), value, limit)
    except Refusal as refusal:  # only a scalar past the limit cannot be split
        assert status_of(refusal) == 413
        return
    assert _put_together(own, below, 1) == value
    things = ([(("r",), own)] if own is not None else []) + below
    assert len({location for location, _ in things}) == len(things)
    for location, thing in things:
        size = len(documents.dumps(mapping.wrap(thing)))
        assert size <= limit // 2 or not isinstance(thing, dict), (location, size)
        # No thing holds a push id's member, nor a member a thing below it lies in.
        if isinstance(thing, dict):
            assert not any(layout.is_push_id(key) for key in thing)
        for other, _ in things:
            if other[: len(location)] == location and len(other) > len(location):
                assert mapping.get_member(thing, other[len(location) : len(location) + 1]) is None


def test_push_ids() -> None:
    assert layout.is_push_id(push_id())
    assert layout.is_push_id("-Nx0123456789abcdefg")
    assert not layout.is_push_id("Nx0123456789abcdefgh")  # not from this century's clock
    assert not layout.is_push_id("-Nx0123456789abcdef")  # 19 characters
    assert not layout.is_push_id("-Nx0123456789abcde.g")
