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

What granian (2.8) lets us see, and so the limits of this:
- `wsgi.input.read(n)` waits until n bytes have arrived or the body ended, and granian has no
  timeout for a body (emmett-framework/granian#728, "wontfix"). The deadline is checked between
  pieces of PIECE_BYTES, so a client sending one byte now and then holds its connection thread
  until a piece is complete, but nothing else.
- A read error (a client that closes in the middle of a chunked body) reads as the body's end:
  granian swallows it. A cut body with a Content-Length is caught by its length; a cut chunked
  body is not distinguishable from a complete one, and is taken as sent.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import RequestEntityTooLarge

from thingstash.web.errors import Problem

if TYPE_CHECKING:
    # The WSGI types the standard library's stubs define (as Flask.wsgi_app is typed).
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# How much one read of the server's input waits for. Small enough that the deadline is looked
# at often while a big body arrives, big enough that a 1 MiB body costs 64 calls.
PIECE_BYTES = 16 * 1024


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


def read_body(environ: dict[str, Any], limit: int, timeout: float) -> bytes:
    """The whole body of the request, or the error to answer it with (raised)."""
    announced = _announced_length(environ)
    if announced == 0:
        return b""
    if announced is not None and announced > limit:
        raise too_large(limit)  # nothing read: the answer says so before the body is sent
    stream = environ["wsgi.input"]
    wanted = announced if announced is not None else limit + 1  # one more shows it's over
    deadline = time.monotonic() + timeout
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
            raise Problem(
                408,
                "request timeout",
                f"the body did not arrive within {timeout:g} s ({received} bytes came)",
                {"Connection": "close"},
            )
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

    def __init__(self, wsgi_app: WSGIApplication, limit: int, timeout: float) -> None:
        self.wsgi_app = wsgi_app
        self.limit = limit
        self.timeout = timeout

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            body = read_body(environ, self.limit, self.timeout)
        except (Problem, RequestEntityTooLarge) as error:
            environ["wsgi.input"] = _RefusedBody(error)
        else:
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        # The buffered copy ends where the body ends: Werkzeug may read it to its end.
        environ["wsgi.input_terminated"] = True
        return self.wsgi_app(environ, start_response)


def read_first(wsgi_app: WSGIApplication, limit: int, timeout: float) -> _BodyFirst:
    """Wrap `wsgi_app` (the admitted app) so that it is called with the body already read."""
    return _BodyFirst(wsgi_app, limit, timeout)
