"""PATCH with JSON Merge Patch (RFC 7396): the RFC's own examples, and a property test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingstash.core.documents import merge_patch

from ..support.jsoncheck import strictly_equal, without_reserved

pytestmark = pytest.mark.cluster

MERGE_PATCH = "application/merge-patch+json"


def rfc7396(target: Any, patch: Any) -> Any:
    """The RFC's pseudocode, transcribed as literally as Python allows."""
    if isinstance(patch, dict):
        if not isinstance(target, dict):
            target = {}
        target = dict(target)
        for name, value in patch.items():
            if value is None:
                if name in target:
                    del target[name]
            else:
                target[name] = rfc7396(target.get(name), value)
        return target
    return patch


# RFC 7396 appendix A: (original, patch, result)
APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("original, patch, result", APPENDIX_A)
def test_rfc_7396_appendix_a(original: Any, patch: Any, result: Any) -> None:
    assert merge_patch(original, patch) == result


@pytest.mark.parametrize(
    "original, patch, result",
    [case for case in APPENDIX_A if isinstance(case[0], dict) and isinstance(case[2], dict)],
)
def test_rfc_7396_appendix_a_through_http(
    client: FlaskClient, original: Any, patch: Any, result: Any
) -> None:
    client.put("/doc", json=original)
    response = client.patch("/doc", data=json.dumps(patch), content_type=MERGE_PATCH)
    assert response.status_code == 200
    assert without_reserved(response.get_data(as_text=True)) == result
    assert without_reserved(client.get("/doc").get_data(as_text=True)) == result


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from("abcd"), children, max_size=3)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values, max_size=4)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(original=objects, patch=objects)
def test_patch_through_http_equals_rfc_7396(
    client: FlaskClient, original: dict, patch: dict
) -> None:
    client.put("/prop", json=original)
    response = client.patch("/prop", json=patch)
    expected = rfc7396(original, patch)
    assert response.status_code == 200
    assert strictly_equal(without_reserved(response.get_data(as_text=True)), expected)


def test_patch_of_a_missing_thing_is_404_and_creates_nothing(client: FlaskClient) -> None:
    response = client.patch("/ghost", json={"a": 1})
    assert response.status_code == 404
    assert response.get_json()["title"] == "thing doesn't exist"
    assert client.get("/ghost").status_code == 404


def test_patch_refreshes_the_lifetime_and_may_set_it(client: FlaskClient) -> None:
    client.put("/t?ttl=100", json={"a": 1})
    assert client.patch("/t", json={"b": 2}).get_json()["ttl"] == 31104000
    assert client.patch("/t?ttl=30", json={}).get_json()["ttl"] == 30
    assert client.patch("/t", json={"ttl": 40}).get_json() == {
        "a": 1,
        "b": 2,
        "ttl": 40,
        "last_updated": client.get("/t").get_json()["last_updated"],
    }


def test_patch_changes_the_etag(client: FlaskClient) -> None:
    etag = client.put("/t", json={"a": 1}).headers["ETag"]
    patched = client.patch("/t", json={"a": 1})
    assert patched.headers["ETag"] != etag
    assert client.get("/t").headers["ETag"] == patched.headers["ETag"]


@pytest.mark.parametrize("raw", [b"[1]", b'"x"', b"null", b"3"])
def test_a_patch_that_is_not_an_object_is_422(client: FlaskClient, raw: bytes) -> None:
    client.put("/t", json={"a": 1})
    response = client.patch("/t", data=raw, content_type=MERGE_PATCH)
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"
    assert client.get("/t").get_json()["a"] == 1


def test_patch_content_types(client: FlaskClient) -> None:
    client.put("/t", json={"a": 1})
    assert client.patch("/t", data=b'{"b":1}', content_type="application/json").status_code == 200
    assert client.patch("/t", data=b'{"c":1}', content_type=MERGE_PATCH).status_code == 200
    assert client.patch("/t", data=b'{"d":1}', content_type="text/plain").status_code == 415


def test_a_patch_that_would_nest_too_deep_is_400(client: FlaskClient) -> None:
    deep: dict = {}
    node = deep
    for _ in range(62):
        node["a"] = {}
        node = node["a"]
    client.put("/t", json={"x": deep})  # 64 levels with the thing itself
    nested_patch = {"x": {"y": {"z": {}}}}  # merges beside: fine
    assert client.patch("/t", json=nested_patch).status_code == 200
    too_deep = {"x": deep}
    node = too_deep["x"]
    while node:
        node = node["a"]
    node["b"] = {"c": {}}
    assert client.patch("/t", json=too_deep).status_code == 400


def test_big_numbers_survive_a_patch(client: FlaskClient) -> None:
    client.put(
        "/n", data=b'{"big":123456789012345678901234567890}', content_type="application/json"
    )
    client.patch("/n", json={"other": 1})
    assert client.get("/n").get_json()["big"] == 123456789012345678901234567890


def test_a_patch_cannot_grow_a_thing_past_the_size_limit(make_app) -> None:  # type: ignore[no-untyped-def]
    # Each body is under the limit; the merge of the two is not: 413, and nothing is written.
    client = make_app(max_body=1000).test_client()
    assert client.put("/grow", json={"a": "x" * 600}).status_code == 201
    before = client.get("/grow")
    response = client.patch("/grow", json={"b": "y" * 600})
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    detail = response.json["detail"]
    assert "the thing would be 1215 bytes, over the limit of 1000" in detail, detail
    after = client.get("/grow")
    assert after.headers["ETag"] == before.headers["ETag"]
    assert after.json == before.json
    # A PATCH that keeps it within the limit still goes through.
    assert client.patch("/grow", json={"b": "y" * 300}).status_code == 200
