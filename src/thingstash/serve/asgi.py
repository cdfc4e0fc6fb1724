"""The async front: granian's ASGI interface in front of the WSGI app, so that a stream costs a
coroutine, not a thread (issue 24).

Each worker runs one event loop. An ordinary request is answered by the WSGI app called on the
loop itself, inline: its body read first (asynchronously: a slow body holds no thread), then the
app, then the answer. Measured against granian's WSGI threads on 2 cores (wrk, plain GET and
PUT at 16 and 64 connections): 2 workers x 1 loop gave 0.74-1.1x of WSGI's 2 workers x threads,
3 workers 0.9-1.4x (within the noise of a shared box); handing each request to a thread instead
cost half. So `serve` runs one worker more than the cores on this front (config.DEFAULT_WORKERS).
ASGI rather than granian's own RSGI (as fast within the noise): RSGI hands over the path
decoded, a byte that is not UTF-8 and a U+FFFD alike; ASGI's `raw_path` is the path as sent.

A stream (a watch, a live query, a Firebase stream) is found by its body (core/environ.LIVE_BODY,
set by web/live.body): its head is sent at once and its loop (live/streamloop.py) is driven as a
coroutine, waiting on the feed reader with no thread, and ended as soon as its client goes (the
`http.disconnect` ASGI tells); the reads it needs (a catch-up, a value, a query's answer) go to
a small pool of STREAM_POOL threads, so every stream of the worker shares those few connections
to the store.

The body of a request is read here, within THINGSTASH_BODY_TIMEOUT, up to the limit of its route
(`body_limit`; and one byte more, to tell a chunked body over it), and handed to the app as read
(core/environ: BODY_READ, BODY_LATE, BODY_BUSY); the app's body layer (web/bodies.py) answers
413, 400 or 408 where a view reads it, as under WSGI. At most `bodies` of them arrive at once,
per client too (the same counts as web/bodies.py's).

Granian (2.8) does not wait for a client to take what a stream sends (emmett-framework/granian
#885): a client that stops reading has what is sent to it kept in memory until it goes.

No Flask here: the workers (thingstash.workers) put the app behind it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_to_bytes

from thingstash.core.environ import BODY_BUSY, BODY_LATE, BODY_READ, LIVE_BODY
from thingstash.live.riding import finish_now
from thingstash.live.streamloop import LiveBody

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)

STREAM_POOL = 4  # threads per worker for the reads of its streams
PIECE_LIMIT = 64 * 1024  # a finite answer larger than this (in pieces) is sent as it comes

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_BASE_ENVIRON: dict[str, Any] = {
    "GATEWAY_INTERFACE": "CGI/1.1",
    "SCRIPT_NAME": "",
    "SERVER_SOFTWARE": "Granian",
    "wsgi.errors": sys.stderr,
    "wsgi.input_terminated": True,
    "wsgi.multiprocess": True,
    "wsgi.multithread": False,
    "wsgi.run_once": False,
    "wsgi.version": (1, 0),
}


class Places(Protocol):
    """Counts of what is under way, per client (web/capacity.Places)."""

    def take(self, client: str) -> str | None: ...

    def give_back(self, client: str) -> None: ...


class AsyncFront:
    """An ASGI application serving `app` (WSGI); see the module's doc."""

    def __init__(
        self,
        app: WSGIApplication,
        body_limit: Callable[[dict[str, Any]], int],
        body_timeout: float,
        bodies: Places,
    ):
        self.app = app
        self.body_limit = body_limit
        self.body_timeout = body_timeout
        self.bodies = bodies
        self._pool: ThreadPoolExecutor | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(STREAM_POOL, thread_name_prefix="thingstash-stream")
        return self._pool

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})  # no WebSocket face yet
            return
        environ = environ_of(scope)
        disconnected = await self._read_body(environ, receive)
        if disconnected and environ.get("CONTENT_LENGTH") is None:
            return  # a body without a length, cut short: nobody to answer, nothing to take
        answer: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            answer[:] = [int(status[:3]), headers]
            return _no_write

        result = self.app(environ, start_response)
        live = environ.get(LIVE_BODY)
        try:
            await send(_start(answer[0], answer[1]))
            if isinstance(live, LiveBody) and environ["REQUEST_METHOD"] == "GET":
                await self._stream(live, receive, send, disconnected)
            else:
                await self._answer(send, answer[1], result)
        except Exception as error:  # noqa: BLE001 - the client went away mid-answer
            log.debug("answer not sent whole: %r", error)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            if isinstance(live, LiveBody):
                live.close()  # (a second close does nothing)

    async def _stream(self, live: LiveBody, receive: Receive, send: Send, gone: bool) -> None:
        """Drive a stream until it ends or its client goes (then it is cancelled)."""

        async def piece(data: bytes) -> None:
            await send(_body(data, True))

        def push(data: bytes) -> Awaitable[None] | None:
            return finish_now(send(_body(data, True)))

        driving = asyncio.ensure_future(live.drive(piece, self.pool, push))
        watching = None if gone else asyncio.ensure_future(_disconnect(receive))
        try:
            await asyncio.wait(
                [task for task in (driving, watching) if task is not None],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in (driving, watching):
                if task is not None and not task.done():
                    task.cancel()
            await asyncio.gather(
                *(task for task in (driving, watching) if task is not None),
                return_exceptions=True,
            )
        if driving.done() and not driving.cancelled():
            error = driving.exception()
            if error is not None:
                log.error("a stream ended on an error", exc_info=error)
            await send(_body(b"", False))

    async def _answer(
        self, send: Send, headers: list[tuple[str, str]], result: Iterable[bytes]
    ) -> None:
        """A finite answer: whole when it is one piece or small, else piece by piece. A stream
        the app did not hand over as a LiveBody is iterated on a thread (it must not hold the
        loop)."""
        if any(k.lower() == "content-type" and "event-stream" in v for k, v in headers):
            loop = asyncio.get_running_loop()
            iterator = iter(result)
            while (piece := await loop.run_in_executor(None, next, iterator, None)) is not None:
                await send(_body(piece, True))
            await send(_body(b"", False))
            return
        pieces: list[bytes] = []
        size = 0
        for piece in result:
            pieces.append(piece)
            size += len(piece)
            if size > PIECE_LIMIT:
                await send(_body(b"".join(pieces), True))
                pieces, size = [], 0
        await send(_body(b"".join(pieces), False))

    async def _read_body(self, environ: dict[str, Any], receive: Receive) -> bool:
        """Read the request's body into the environ (see the module's doc); whether the client
        went away meanwhile."""
        announced = environ.get("CONTENT_LENGTH")
        environ["wsgi.input"] = io.BytesIO()
        if not announced and not _body_without_length(environ):
            return False
        if announced == "0":
            return False
        environ[BODY_READ] = True
        limit = self.body_limit(environ)
        if announced and announced.isdigit() and int(announced) > limit:
            return False  # refused (413) unread
        client = environ.get("REMOTE_ADDR") or ""
        why = self.bodies.take(client)
        if why is not None:
            environ[BODY_BUSY] = why
            return False
        pieces: list[bytes] = []
        received = 0
        gone = False
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        gone = True
                        break
                    pieces.append(message.get("body", b""))
                    received += len(pieces[-1])
                    if received > limit or not message.get("more_body", False):
                        break
        except TimeoutError:
            environ[BODY_LATE] = True
        finally:
            self.bodies.give_back(client)
        environ["wsgi.input"] = io.BytesIO(b"".join(pieces))
        return gone


def _body_without_length(environ: dict[str, Any]) -> bool:
    """Whether a request with no Content-Length has a body all the same (as web/bodies.py
    reads it): chunked, or an HTTP/2 request that may carry one."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    return environ["SERVER_PROTOCOL"].startswith("HTTP/2") and environ["REQUEST_METHOD"] not in (
        "GET",
        "HEAD",
        "OPTIONS",
    )


async def _disconnect(receive: Receive) -> None:
    """Returns when the client has gone."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _start(status: int, headers: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    }


def _body(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def _no_write(data: bytes) -> None:
    raise NotImplementedError("write() is not offered: return the body")


def environ_of(scope: dict[str, Any]) -> dict[str, Any]:
    """A WSGI environ for an ASGI request, as granian's own WSGI interface builds it: the path
    as sent, percent-decoded, its bytes as Latin-1."""
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("", 0)
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    environ = dict(_BASE_ENVIRON)
    environ.update(
        {
            "REQUEST_METHOD": scope["method"],
            "PATH_INFO": unquote_to_bytes(raw.split(b"?", 1)[0]).decode("latin-1"),
            "QUERY_STRING": scope["query_string"].decode("latin-1"),
            "SERVER_NAME": str(server[0]),
            "SERVER_PORT": str(server[1]),
            "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
            "REMOTE_ADDR": str(client[0]),
            "wsgi.url_scheme": scope.get("scheme", "http"),
        }
    )
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    environ.update(headers)
    return environ
