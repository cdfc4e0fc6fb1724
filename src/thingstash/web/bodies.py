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
`wsgi.input.read(n)` waits until n bytes have arrived or the body ended: a read cannot be
given a deadline, nor stopped. So the body is read by a thread of its own (`Readers`), and the
request's thread waits for it with the deadline, measured from the first byte to the last,
whatever the pieces' size; when it passes, the request is answered `408` with
`Connection: close`. The reader stays blocked until the client sends more or goes away, so the
readers are counted as the streams are (capacity.Places): THINGSTASH_MAX_BODIES per process,
THINGSTASH_MAX_BODIES_PER_CLIENT per client address; past them a body is refused at once,
`503` with `Retry-After`, unread.

A read error (a client that closes in the middle of a chunked body) reads as the body's end:
granian swallows it. A cut body with a Content-Length is caught by its length; a cut chunked
body is not distinguishable from a complete one, and is taken as sent.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import RequestEntityTooLarge

from thingstash.web.capacity import Places
from thingstash.web.errors import RETRY_AFTER_SECONDS, Problem

if TYPE_CHECKING:
    # The WSGI types the standard library's stubs define (as Flask.wsgi_app is typed).
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# How much one read of the server's input asks for: a 1 MiB body costs 64 calls.
PIECE_BYTES = 16 * 1024


class Readers:
    """Threads that read bodies, `places.total` at most, `places.per_client` for one client.

    Daemon threads kept for the next body (a thread started per body costs more than the
    hand-over), and daemon because a reader a client left stalled must not hold up the
    worker's exit."""

    def __init__(self, places: Places) -> None:
        self.places = places
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # readers waiting for a job

    def read(self, stream: Any, wanted: int, client: str, timeout: float) -> list[bytes]:
        """The pieces of up to `wanted` bytes of `stream` (fewer if it ended), or Problem."""
        why = self.places.take(client)
        if why is not None:
            raise Problem(
                503,
                "too many bodies arriving",
                f"too many request bodies still arriving: {why}; try again later",
                {"Retry-After": RETRY_AFTER_SECONDS, "Connection": "close"},
            )
        pieces: list[bytes] = []
        stop = threading.Event()
        done = threading.Event()

        def job() -> None:
            try:
                _read_into(stream, wanted, pieces, stop)
            finally:
                self.places.give_back(client)
                done.set()

        try:
            if not self._idle.acquire(blocking=False):
                threading.Thread(target=self._serve, name="thingstash-body", daemon=True).start()
            self._jobs.put(job)
        except BaseException:
            self.places.give_back(client)
            raise
        if not done.wait(timeout):
            stop.set()
            raise Problem(
                408,
                "request timeout",
                f"the body did not arrive within {timeout:g} s; nothing was stored",
                {"Connection": "close"},
            )
        return pieces

    def _serve(self) -> None:
        while True:
            self._jobs.get()()
            self._idle.release()


def _read_into(stream: Any, wanted: int, pieces: list[bytes], stop: threading.Event) -> None:
    received = 0
    while received < wanted and not stop.is_set():
        try:
            piece = stream.read(min(PIECE_BYTES, wanted - received))
        except (OSError, ValueError):  # another server's way of saying the client went away
            piece = b""
        if not piece:
            return
        pieces.append(piece)
        received += len(piece)


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


def read_body(environ: dict[str, Any], limit: int, timeout: float, readers: Readers) -> bytes:
    """The whole body of the request, or the error to answer it with (raised)."""
    announced = _announced_length(environ)
    if announced == 0:
        return b""
    if announced is not None and announced > limit:
        raise too_large(limit)  # nothing read: the answer says so before the body is sent
    wanted = announced if announced is not None else limit + 1  # one more shows it's over
    client = environ.get("REMOTE_ADDR") or ""
    pieces = readers.read(environ["wsgi.input"], wanted, client, timeout)
    received = sum(len(piece) for piece in pieces)
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


class _BodyFirst:
    """`wsgi_app` (the admitted app), called with the body already read (a class, as Werkzeug's
    middleware are, so that it can stand in for Flask.wsgi_app)."""

    def __init__(
        self, wsgi_app: WSGIApplication, limit: int, timeout: float, readers: Readers
    ) -> None:
        self.wsgi_app = wsgi_app
        self.limit = limit
        self.timeout = timeout
        self.readers = readers

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            body = read_body(environ, self.limit, self.timeout, self.readers)
        except (Problem, RequestEntityTooLarge) as error:
            environ["wsgi.input"] = _RefusedBody(error)
        else:
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        # The buffered copy ends where the body ends: Werkzeug may read it to its end.
        environ["wsgi.input_terminated"] = True
        return self.wsgi_app(environ, start_response)


def read_first(wsgi_app: WSGIApplication, limit: int, timeout: float, places: Places) -> _BodyFirst:
    """Wrap `wsgi_app` (the admitted app) so that it is called with the body already read, by
    at most `places` readers."""
    return _BodyFirst(wsgi_app, limit, timeout, Readers(places))
