"""Property: any JSON object a client PUTs comes back from GET exactly (types, order, values)."""

from __future__ import annotations

import json

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..support.jsoncheck import strictly_equal, without_reserved

RESERVED = {"ttl", "last_updated"}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
things = st.dictionaries(
    st.text(max_size=10).filter(lambda key: key not in RESERVED and key != ".sv"),
    values,
    max_size=6,
)


def no_server_values(value: object) -> bool:
    if isinstance(value, dict):
        return ".sv" not in value and all(no_server_values(v) for v in value.values())
    if isinstance(value, list):
        return all(no_server_values(v) for v in value)
    return True


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(thing=things.filter(no_server_values))
def test_what_is_put_is_what_is_got(client: FlaskClient, thing: dict) -> None:
    raw = json.dumps(thing, ensure_ascii=False).encode("utf-8")
    put = client.put("/prop/thing", data=raw, content_type="application/json")
    assert put.status_code in (200, 201), put.data
    assert strictly_equal(without_reserved(put.get_data(as_text=True)), thing)
    got = client.get("/prop/thing")
    assert strictly_equal(without_reserved(got.get_data(as_text=True)), thing)
