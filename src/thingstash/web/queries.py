"""Queries of a folder over HTTP (API.md, "Queries"): `GET /<folder>/?order_by=...` answers
the things directly in it in the order of a field, a page at a time, with ranks, or a count;
with `Accept: text/event-stream` the same answer live, as `query` events.

The parameters are checked by thingstash.core.queries (pure); the store answers; this module only
turns the answer into JSON and keeps keys within their prefix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from flask import Response, current_app, request

from thingstash.core import documents, ordering, queries
from thingstash.core.answers import Answer
from thingstash.core.model import StorageUnavailable, ThingMissing
from thingstash.core.paths import Path
from thingstash.core.queries import Query
from thingstash.core.shared import SharedBy
from thingstash.core.store import Store
from thingstash.live import Live
from thingstash.live.hub import Subscription
from thingstash.web import admission, auth, metrics, rulesguard
from thingstash.web.context import store
from thingstash.web.errors import Problem
from thingstash.web.live import current as live
from thingstash.web.watch import MIN_INTERVAL, RETRY_S, REVOKED

log = logging.getLogger(__name__)
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
    return Response(
        _events(current, subscription, folder.text, query, first, allowed, gate),
        mimetype="text/event-stream",
        headers=headers,
    )


def _frame(body: bytes) -> bytes:
    return b"event: query\ndata: " + body + b"\n\n"


def _events(
    current: Live,
    subscription: Subscription,
    folder: str,
    query: Query,
    first: Answer,
    allowed: Callable[[], bool],
    gate: admission.CostlyGate,
) -> Iterator[bytes]:
    """The stream: the first answer, then a new one each time a change to a thing directly in
    the folder (a write, a delete, an expiry) changes the answer. Changes arriving within
    MIN_INTERVAL of each other are answered once, so a burst costs one query and the last
    event always shows the state after it."""
    hub, store = current.hub, current.hub.store
    metrics.WATCHES.inc()
    try:
        yield b": watching a query of /" + folder.encode("utf-8") + b"\n\n"
        yield _frame(render(folder, query, first))
        # A new answer is sent when something but the ttls (counting down) changed.
        last = render(folder, query, first, ttl=False)
        quiet_since = time.monotonic()
        dirty_since: float | None = None
        latest: str | None = None  # the last change taken (None: unknown, after a lag)
        while not hub.closed:
            now = time.monotonic()
            if dirty_since is None:
                wait = current.keepalive - (now - quiet_since)
            else:
                wait = dirty_since + MIN_INTERVAL - now
            taken = subscription.take(max(wait, 0.0))
            now = time.monotonic()
            if taken is not None:
                deliveries, lagging, closed = taken
                if closed:
                    return
                # An answer made after the last change taken is at least as new as what the
                # stream was told; after a lag it is not known which change that was.
                latest = None if lagging else deliveries[-1].event.id if deliveries else latest
                if dirty_since is None and (
                    lagging or any(_directly_in(folder, d.event.path) for d in deliveries)
                ):
                    dirty_since = now
            if dirty_since is None:
                if taken is None:
                    if not _still(allowed):
                        yield REVOKED
                        return
                    yield b": keep-alive\n\n"
                    quiet_since = now
                continue
            if taken is not None and now - dirty_since < MIN_INTERVAL:
                continue  # more of the burst may come: answer once, a little later
            try:
                # Iterated after the request's place was given back: waits for the gate alone.
                answer = _answer(store, folder, query, gate, latest)
            except (StorageUnavailable, admission.Busy) as error:
                log.warning("live query of %s waits for the store: %s", folder, error)
                time.sleep(RETRY_S)
                continue
            except ThingMissing:  # the thing `around` centres on is gone
                answer = Answer([], None)
            dirty_since = None
            compared = render(folder, query, answer, ttl=False)
            if compared == last:
                continue
            if not _still(allowed):
                yield REVOKED
                return
            last = compared
            yield _frame(render(folder, query, answer))
            quiet_since = time.monotonic()
    finally:
        metrics.WATCHES.dec()
        hub.unsubscribe(subscription)


def _answer(
    store: Store, folder: str, query: Query, gate: admission.CostlyGate, latest: str | None
) -> Answer:
    """The query's answer after the change `latest`: run once per process for every stream
    of the same query that asks after that change (ANSWERS), else (a lag: which change is not
    known) run for this stream alone."""

    def run() -> Answer:
        return store.query(folder, query, admission.costly(gate, None))

    if latest is None:
        return run()
    return ANSWERS.of(store).get((folder, query, latest), run)


def _directly_in(folder: str, path: str) -> bool:
    return path.startswith(folder) and "/" not in path[len(folder) :]


def _still(allowed: Callable[[], bool]) -> bool:
    try:
        return bool(allowed())
    except StorageUnavailable:
        return True
