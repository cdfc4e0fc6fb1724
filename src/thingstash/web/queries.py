"""Queries of a folder over HTTP (API.md, "Queries"): `GET /<folder>/?order_by=...` answers
the things directly in it in the order of a field, a page at a time, with ranks, or a count;
with `Accept: text/event-stream` the same answer live, as `query` events.

The parameters are checked by thingstash.core.queries (pure); the store answers; this module only
turns the answer into JSON and keeps keys within their prefix.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app, request

from thingstash.core import documents, ordering, queries
from thingstash.core.answers import Answer
from thingstash.core.environ import ON_LOOP
from thingstash.core.model import StorageUnavailable, ThingMissing
from thingstash.core.paths import Path
from thingstash.core.queries import Query
from thingstash.core.shared import SharedBy
from thingstash.core.store import Store
from thingstash.live.hub import Delivery
from thingstash.live.streamloop import MIN_INTERVAL
from thingstash.web import admission, auth, rulesguard
from thingstash.web.context import store
from thingstash.web.errors import Problem
from thingstash.web.live import body
from thingstash.web.live import current as live
from thingstash.web.watch import REVOKED

# Live queries' answers, by (folder, query, the change they follow), one Shared per store: one
# run per change for every stream of the same query (core/shared.py).
ANSWERS: SharedBy[tuple[str, Query, str], Answer] = SharedBy()


def asked() -> Query | None:
    """The query this folder GET asks (None for a listing); BadQuery becomes a 400."""
    if not request.environ.get("QUERY_STRING"):
        return None
    return queries.parse_query(request.args.to_dict(flat=False))


def _check_prefix(folder: Path) -> None:
    prefix = auth.current().prefix
    if not folder.text.startswith(prefix):
        raise Problem(
            403,
            "forbidden",
            f"this key is limited to paths starting with {prefix!r}: it may query folders "
            "inside that prefix only",
        )


def render(folder: str, query: Query, answer: Answer, ttl: bool = True) -> bytes:
    """The answer as the API shows it (without the ttls: to compare two answers)."""
    if answer.count is not None:
        return orjson.dumps({"count": answer.count})
    things: list[dict[str, Any]] = []
    for found in answer.found:
        item: dict[str, Any] = {
            "path": folder + found.name,
            "ttl": found.thing.ttl if ttl else None,
            "last_updated": found.thing.last_updated,
            "rank": found.rank,
            # exact JSON, big ints included
            "key": orjson.Fragment(documents.dumps(found.key)),
        }
        if query.values:
            item["value"] = orjson.Fragment(found.thing.body)
        things.append(item)
    cursor = ordering.encode_cursor(answer.next) if answer.next is not None else None
    return orjson.dumps({"things": things, "next": cursor})


def _gate() -> admission.CostlyGate:
    gate: admission.CostlyGate = current_app.extensions[admission.COSTLY]
    return gate


def read_query(folder: Path, query: Query) -> Response:
    _check_prefix(folder)
    answer = store().query(folder.text, query, admission.costly(_gate(), request.environ))
    response = Response(render(folder.text, query, answer), mimetype="application/json")
    response.headers["Cache-Control"] = "no-cache"
    return response


def watch_query(folder: Path, query: Query) -> Response:
    """The answer as `query` events: the current one, then each new one (API.md)."""
    _check_prefix(folder)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        return Response(mimetype="text/event-stream", headers=headers)
    current = live()
    # Subscribed before the first answer is read, so no change falls in between.
    subscription = current.hub.subscribe(folder.text, True)
    # Its key, and for a user the rules (query.* included), asked again as it goes.
    judged_query = rulesguard.query_info(query) if rulesguard.is_judged() else None
    allowed = rulesguard.still_allowed(folder.text, judged_query)
    gate = _gate()
    try:
        # its errors (400, 404) answer the request
        first = store().query(folder.text, query, admission.costly(gate, request.environ))
    except BaseException:
        current.hub.unsubscribe(subscription)
        raise
    # On an event loop, a new answer never waits for the gate: refused, it is tried again.
    wait = not request.environ.get(ON_LOOP)
    face = QueryFace(current.hub.store, folder.text, query, first, gate, wait)
    opening = [
        b": watching a query of /" + folder.text.encode("utf-8") + b"\n\n",
        _frame(render(folder.text, query, first)),
    ]
    return Response(
        body(current.hub, current.keepalive, subscription, face, opening, allowed),
        mimetype="text/event-stream",
        headers=headers,
    )


def _frame(body: bytes) -> bytes:
    return b"event: query\ndata: " + body + b"\n\n"


class QueryFace:
    """A live query (live/streamloop.py's Face): a new answer each time a change to a thing
    directly in the folder (a write, a delete, an expiry) changes it. Changes arriving within
    MIN_INTERVAL of each other are answered once, so a burst costs one query and the last
    event always shows the state after it."""

    keepalive_frame = b": keep-alive\n\n"
    revoked_frame = REVOKED
    waiting_frame: bytes | None = None
    gather_s = MIN_INTERVAL
    rest_s = 0.0
    blocking = True  # a new answer runs the query

    def __init__(
        self,
        store: Store,
        folder: str,
        query: Query,
        first: Answer,
        gate: admission.CostlyGate,
        wait: bool = True,
    ) -> None:
        self.store, self.folder, self.query, self.gate = store, folder, query, gate
        self.wait = wait
        self.name = f"live query of {folder}"
        # A new answer is sent when something but the ttls (counting down) changed.
        self.last = render(folder, query, first, ttl=False)
        self.dirty = False
        self.latest: str | None = None  # the last change taken (None: unknown, after a lag)

    @property
    def pending(self) -> bool:
        return self.dirty

    def note(self, deliveries: list[Delivery], lagging: bool) -> None:
        # An answer made after the last change taken is at least as new as what the stream
        # was told; after a lag it is not known which change that was.
        self.latest = None if lagging else deliveries[-1].event.id if deliveries else self.latest
        if lagging or any(_directly_in(self.folder, d.event.path) for d in deliveries):
            self.dirty = True

    def produce(self) -> list[bytes]:
        try:
            # Run after the request's place was given back: waits for the gate alone.
            answer = _answer(self.store, self.folder, self.query, self.gate, self.latest, self.wait)
        except admission.Busy as error:
            raise StorageUnavailable(str(error)) from error  # (waited out alike)
        except ThingMissing:  # the thing `around` centres on is gone
            answer = Answer([], None)
        self.dirty = False
        compared = render(self.folder, self.query, answer, ttl=False)
        if compared == self.last:
            return []
        self.last = compared
        return [_frame(render(self.folder, self.query, answer))]


def _answer(
    store: Store,
    folder: str,
    query: Query,
    gate: admission.CostlyGate,
    latest: str | None,
    wait: bool = True,
) -> Answer:
    """The query's answer after the change `latest`: run once per process for every stream
    of the same query that asks after that change (ANSWERS), else (a lag: which change is not
    known) run for this stream alone."""

    def run() -> Answer:
        return store.query(folder, query, admission.costly(gate, None, wait))

    if latest is None:
        return run()
    return ANSWERS.of(store).get((folder, query, latest), run)


def _directly_in(folder: str, path: str) -> bool:
    return path.startswith(folder) and "/" not in path[len(folder) :]
