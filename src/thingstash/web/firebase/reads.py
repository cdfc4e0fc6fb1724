"""Reads: `GET /<path>.json` as Firebase's REST API answers it: a location's value (with its
ETag, and `if-none-match`), `shallow=true`, a query (`orderBy` ...), or a stream
(`Accept: text/event-stream`, stream.py). `format=export` is the value as it is (the tree
holds no priorities). The tree's reads are firebase/reading.py's and firebase/querying.py's."""

from __future__ import annotations

from flask import Response, request

from thingstash.firebase import mapping, querying, reading
from thingstash.firebase import query as fbquery
from thingstash.firebase.errors import BadRequest
from thingstash.firebase.mapping import Location
from thingstash.web.context import store
from thingstash.web.firebase import guard, stream
from thingstash.web.firebase.protocol import answer, budget, flag, wants_etag


def get(location: Location) -> Response:
    # The query is checked first, so that a bad one gets its own words, whoever asks.
    query = fbquery.parse_query(request.args.to_dict(flat=False))
    guard.check_read(location)
    if "text/event-stream" in request.environ.get("HTTP_ACCEPT", ""):
        return stream.respond(location)
    shallow = flag("shallow")
    within = budget()
    if shallow:
        if query is not None:
            raise BadRequest("shallow cannot be combined with query parameters")
        return answer(reading.shallow_value(store(), location, within))
    if query is not None:
        return answer(querying.query_value(store(), location, query, within))
    value = reading.read_value(store(), location, within)
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and if_none_match == mapping.etag(value):
        response = Response(status=304)
        response.headers["ETag"] = if_none_match
        return response
    return answer(value, etag=wants_etag() or if_none_match is not None)
