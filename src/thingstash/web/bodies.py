"""Request bodies, read whole before a request takes a place (admission.admit), or refused.

One mechanism for every body, with a Content-Length or chunked alike: the body is read into
memory up to the limit (THINGSTASH_MAX_BODY) before the app is called, so a client that sends
slowly holds only its own connection thread, never one of the few places where requests are
worked on. The app then reads the buffered copy. A body is refused, with nothing stored:
- past the limit: `413` (a chunked body too; never cut to the limit);
- with fewer bytes than its Content-Length, because the client closed or half-closed early:
  `400 incomplete body`;
- still arriving after THINGSTASH_BODY_TIMEOUT seconds: `408`.

The refusal is raised where a view reads the body (`request.get_data()`), so it comes after the
key check and the rate limit, and in the same problem+json as any other error, with CORS
headers. A view that reads no body (GET, DELETE) is not bothered by one.

Granian (2.8) has no timeout for a body (emmett-framework/granian#728, "wontfix"), and
`wsgi.input.read(n)` waits until n bytes have arrived or the body ended: a read can neither be
given a deadline nor be stopped. So a watchdog thread per process (`Deadlines`) answers `408`
(with `Connection: close`) for a request whose body is still arriving at its deadline, through
granian's answer object of the request (serve/server.expose_protocol puts it in the environ as
PROTOCOL), while the request's thread still waits in its read: the deadline runs from the
request's head to the body's last byte, whatever the pieces' size. That thread stays in its
read until the client sends the rest or goes away, and then stores nothing. So the bodies still
arriving are counted as the streams are (capacity.Places): THINGSTASH_MAX_BODIES per process,
THINGSTASH_MAX_BODIES_PER_CLIENT per client address; past them a body is refused at once,
`503` with `Retry-After`, unread. (Reading in a thread of its own, the request's thread waiting
with the deadline, did the same but cost ~15% of PUT req/s: a hand-over per body.) The
watchdog's 408 is answered outside Flask, so without CORS headers. Under another server (no
PROTOCOL) the deadline is looked at between pieces of PIECE_BYTES.

A read error (a client that closes in the middle of a chunked body) reads as the body's end:
granian swallows it. A cut body with a Content-Length is caught by its length; a cut chunked
body is not distinguishable from a complete one, and is taken as sent.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import RequestEntityTooLarge

from thingstash.core.environ import BODY_BUSY, BODY_LATE, BODY_READ
from thingstash.web.capacity import Places, Refusal
from thingstash.web.errors import RETRY_AFTER_SECONDS, Problem

if TYPE_CHECKING:
    # The WSGI types the standard library's stubs define (as Flask.wsgi_app is typed).
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

# How much one read of the server's input asks for: a 1 MiB body costs 64 calls.
PIECE_BYTES = 16 * 1024
# The environ key of granian's answer object of the request (serve/server.expose_protocol).
PROTOCOL = "thingstash.protocol"
WATCH_EVERY_S = 0.2  # how often the watchdog looks for late bodies


def late(timeout: float) -> Problem:
    return Problem(
        408,
        "request timeout",
        f"the body did not arrive within {timeout:g} s; nothing was stored",
        {"Connection": "close"},
    )


class Deadlines:
    """The bodies being read, and a watchdog thread (started with the first) that answers
    `408` for those still arriving at their deadline. Whoever takes a body's entry out of
    `_reading` first, the watchdog or the request once its read returned, answers it."""

    def __init__(self, render: Refusal) -> None:
        self._render = render
        self._reading: dict[int, tuple[float, float, Any]] = {}
        self._started = False
        self._start_lock = threading.Lock()

    def watch(self, key: int, deadline: float, timeout: float, protocol: Any) -> None:
        if not self._started:
            self._start()
        self._reading[key] = (deadline, timeout, protocol)

    def mine(self, key: int) -> bool:
        """Whether the request `key` is still its own to answer (the watchdog did not)."""
        return self._reading.pop(key, None) is not None

    def _start(self) -> None:
        with self._start_lock:
            if not self._started:
                threading.Thread(target=self._watch, name="thingstash-late", daemon=True).start()
                self._started = True

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            for key, (deadline, timeout, protocol) in list(self._reading.items()):
                if deadline <= now and self._reading.pop(key, None) is not None:
                    error = late(timeout)
                    headers, body = self._render(408, error.title, error.detail, error.headers)
                    try:
                        protocol.response_bytes(408, headers, body)
                    except Exception:  # the connection is gone: nothing to answer
                        log.debug("could not answer a late body", exc_info=True)


class _RefusedBody(io.RawIOBase):
    """The input of a request whose body was refused: reading it raises why."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise self.error


def too_large(limit: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"the body is over the limit of {limit} bytes")


def _announced_length(environ: dict[str, Any]) -> int | None:
    """The Content-Length, None when the body runs to its end (chunked, or HTTP/2 without
    one), 0 when there is no body."""
    raw = environ.get("CONTENT_LENGTH")
    if raw:
        # Granian refuses a malformed Content-Length itself; another server may not.
        if not (raw.isascii() and raw.isdigit()):  # int() takes '²' and '٣' too
            raise Problem(400, "bad Content-Length", "Content-Length must be a whole number")
        return int(raw)
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    if environ.get("SERVER_PROTOCOL", "").startswith("HTTP/2") and environ.get(
        "REQUEST_METHOD"
    ) not in ("GET", "HEAD", "OPTIONS"):
        return None  # HTTP/2 frames a body without announcing its length
    return 0


def read_body(
    environ: dict[str, Any], limit: int, timeout: float, places: Places, deadlines: Deadlines
) -> bytes:
    """The whole body of the request, or the error to answer it with (raised)."""
    announced = _announced_length(environ)
    if announced == 0:
        return b""
    if announced is not None and announced > limit:
        raise too_large(limit)  # nothing read: the answer says so before the body is sent
    wanted = announced if announced is not None else limit + 1  # one more shows it's over
    if environ.get(BODY_READ):  # by the async front (serve/asgi.py), places and deadline too
        if environ.get(BODY_BUSY):
            raise _busy(environ[BODY_BUSY])
        if environ.get(BODY_LATE):
            raise late(timeout)
        pieces, received = _read(environ["wsgi.input"], wanted, math.inf, timeout)
        return _whole(pieces, received, announced, limit)
    client = environ.get("REMOTE_ADDR") or ""
    why = places.take(client)
    if why is not None:
        raise _busy(why)
    deadline = time.monotonic() + timeout
    protocol = environ.get(PROTOCOL)
    key = id(environ)
    if protocol is not None:
        deadlines.watch(key, deadline, timeout, protocol)
    try:
        pieces, received = _read(environ["wsgi.input"], wanted, deadline, timeout)
    finally:
        places.give_back(client)
        answered = protocol is not None and not deadlines.mine(key)
    if answered:
        raise late(timeout)  # the watchdog answered it: this answer goes nowhere
    return _whole(pieces, received, announced, limit)


def _busy(why: str) -> Problem:
    return Problem(
        503,
        "too many bodies arriving",
        f"too many request bodies still arriving: {why}; try again later",
        {"Retry-After": RETRY_AFTER_SECONDS, "Connection": "close"},
    )


def _whole(pieces: list[bytes], received: int, announced: int | None, limit: int) -> bytes:
    """The body read, or why it is refused: over the limit, or cut short."""
    if announced is None and received > limit:
        raise too_large(limit)
    if announced is not None and received < announced:
        raise Problem(
            400,
            "incomplete body",
            f"the body ended after {received} of the {announced} bytes its Content-Length "
            "announced; nothing was stored",
        )
    return b"".join(pieces)


def _read(stream: Any, wanted: int, deadline: float, timeout: float) -> tuple[list[bytes], int]:
    pieces: list[bytes] = []
    received = 0
    while received < wanted:
        try:
            piece = stream.read(min(PIECE_BYTES, wanted - received))
        except (OSError, ValueError):  # another server's way of saying the client went away
            piece = b""
        if not piece:
            break
        pieces.append(piece)
        received += len(piece)
        if received < wanted and time.monotonic() > deadline:
            raise late(timeout)
    return pieces, received


class _BodyFirst:
    """`wsgi_app` (the admitted app), called with the body already read (a class, as Werkzeug's
    middleware are, so that it can stand in for Flask.wsgi_app)."""

    def __init__(
        self,
        wsgi_app: WSGIApplication,
        limit: int,
        timeout: float,
        places: Places,
        deadlines: Deadlines,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.limit = limit
        self.timeout = timeout
        self.places = places
        self.deadlines = deadlines

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            body = read_body(environ, self.limit, self.timeout, self.places, self.deadlines)
        except (Problem, RequestEntityTooLarge) as error:
            environ["wsgi.input"] = _RefusedBody(error)
        else:
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        # The buffered copy ends where the body ends: Werkzeug may read it to its end.
        environ["wsgi.input_terminated"] = True
        return self.wsgi_app(environ, start_response)


def read_first(
    wsgi_app: WSGIApplication, limit: int, timeout: float, places: Places, render: Refusal
) -> _BodyFirst:
    """Wrap `wsgi_app` (the admitted app) so that it is called with the body already read, at
    most `places` at once; a late body's 408 is worded by `render` (the face's)."""
    return _BodyFirst(wsgi_app, limit, timeout, places, Deadlines(render))
