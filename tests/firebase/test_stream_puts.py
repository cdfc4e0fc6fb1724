"""Firebase streams, the pure part (thingstash.firebase.streaming): which change of a thing a
stream of a location shows as which `put`, and the frames."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from thingstash.firebase.mapping import Location
from thingstash.firebase.streaming import (
    event_location,
    event_path,
    location_of,
    put_frame,
    puts_for,
)


def test_a_change_at_or_below_the_location_is_shown_where_it_is() -> None:
    assert event_location(("a", "b"), ("a", "b")) == ()
    assert event_location(("a", "b"), ("a", "b", "c", "d")) == ("c", "d")
    assert event_location((), ("a",)) == ("a",)


def test_a_change_above_the_location_is_shown_as_the_whole_value() -> None:
    # The location lies inside the thing "a": its value changes whole.
    assert event_location(("a", "b", "c"), ("a",)) == ()
    assert event_location(("a", "b", "c"), ("a", "b")) == ()


def test_a_change_elsewhere_is_not_shown() -> None:
    assert event_location(("a", "b"), ("a", "c")) is None
    assert event_location(("a", "b"), ("a", "bc")) is None  # a name that merely starts alike
    assert event_location(("a", "bc"), ("a", "b")) is None
    assert event_location(("a",), ("b", "a")) is None


def test_paths_become_locations() -> None:
    assert location_of("a/b/c") == ("a", "b", "c")
    assert location_of("") == ()
    assert event_path(()) == "/"
    assert event_path(("x", "y")) == "/x/y"


def test_a_put_frame_is_what_firebase_clients_read() -> None:
    frame = put_frame(("rooms", "kitchen"), b'{"t":21.5}', "1700000000000-3")
    assert frame == (
        b'event: put\nid: 1700000000000-3\ndata: {"path":"/rooms/kitchen","data":{"t":21.5}}\n\n'
    )
    # Keys with quotes or non-ASCII stay one line of valid JSON.
    frame = put_frame(('say "hi"', "ça"), b"null", "1-0")
    data = frame.split(b"data: ", 1)[1]
    assert data.endswith(b"\n\n") and data.count(b"\n") == 2
    assert orjson.loads(data) == {"path": '/say "hi"/ça', "data": None}


def test_a_burst_shows_each_location_once_at_its_last_change() -> None:
    changes = [("1-0", "a/x"), ("2-0", "a/y"), ("3-0", "a/x"), ("4-0", "b/z")]
    assert puts_for(("a",), changes) == [(("y",), "2-0"), (("x",), "3-0")]


def test_a_change_below_one_shown_later_is_left_to_it() -> None:
    changes = [("1-0", "a/x/deep"), ("2-0", "a/x"), ("3-0", "a/y/deep")]
    assert puts_for(("a",), changes) == [(("x",), "2-0"), (("y", "deep"), "3-0")]
    # A change above the location makes one put of the whole value, later ones still follow.
    changes = [("1-0", "a/b/c"), ("2-0", "a"), ("3-0", "a/b/d")]
    assert puts_for(("a", "b"), changes) == [((), "2-0"), (("d",), "3-0")]


names = st.sampled_from(["a", "b", "c", "ab"])
locations = st.lists(names, max_size=4).map(tuple)
paths = st.lists(names, min_size=1, max_size=4).map("/".join)


@given(locations, st.lists(paths, max_size=30))
def test_every_change_that_touches_the_location_is_covered_by_a_later_put(
    listened: Location, changed: list[str]
) -> None:
    changes = [(f"{i + 1}-0", path) for i, path in enumerate(changed)]
    puts = puts_for(listened, changes)
    order = [int(event_id.split("-")[0]) for _, event_id in puts]
    assert order == sorted(set(order))  # ids increase: a client resuming from one misses none
    assert len({at for at, _ in puts}) == len(puts)
    for i, path in enumerate(changed):
        shown = event_location(listened, location_of(path))
        if shown is None:
            continue
        # A put at that location or above it, sent for this change or a later one.
        assert any(shown[: len(at)] == at and int(eid.split("-")[0]) > i for at, eid in puts)
    for at, event_id in puts:
        path = changes[int(event_id.split("-")[0]) - 1][1]
        assert event_location(listened, location_of(path)) == at  # only what was changed
