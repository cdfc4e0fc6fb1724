"""Firebase streams (GET with `Accept: text/event-stream`): not served by this slice yet."""

from __future__ import annotations

from flask import Response

from thingstash.firebase.mapping import Location, Refusal


def respond(location: Location) -> Response:
    raise Refusal(400, "Streams are not served yet")
