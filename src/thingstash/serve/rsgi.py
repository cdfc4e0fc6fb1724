"""The async front: granian's RSGI interface in front of the WSGI app, so that a stream costs a
coroutine, not a thread (issue 24).

Each worker runs one event loop. An ordinary request is answered by the WSGI app called on the
loop itself, inline: its body read first (asynchronously: a slow body holds no thread), then the
app, then the answer. Measured against granian's WSGI threads on 2 cores (wrk, plain GET and
PUT at 16 and 64 connections): 2 workers x 1 loop gave 0.74-1.1x of WSGI's 2 workers x threads,
3 workers 0.9-1.4x (within the noise of a shared box); handing each request to a thread instead
cost half. So `serve` runs one worker more than the cores on this front (config.DEFAULT_WORKERS).

A stream (a watch, a live query, a Firebase stream) is found by its body (core/environ.LIVE_BODY,
set by web/live.body): its head is sent at once and its loop (live/streamloop.py) is driven as a
coroutine, waiting on the feed reader with no thread; the reads it needs (a catch-up, a value, a
query's answer) go to a small pool of STREAM_POOL threads, so every stream of the worker shares
those few connections to the store.

The body of a request is read here, within THINGSTASH_BODY_TIMEOUT, up to the largest limit a
route takes (and one byte more, to tell a chunked body over it), and handed to the app as read
(core/environ: BODY_READ, BODY_LATE, BODY_BUSY); the app's body layer (web/bodies.py) answers
413, 400 or 408 where a view reads it, as under WSGI. At most `bodies` of them arrive at once,
per client too (the same counts as web/bodies.py's).

A path whose percent-escapes are not UTF-8 reaches RSGI with U+FFFD in their place (granian
decodes it): it is handed on with a byte that is not UTF-8 either, so the app refuses it as it
would have. No Flask here: the workers (thingstash.workers) put the app behind it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from thingstash.core.environ import BODY_BUSY, BODY_LATE, BODY_READ, LIVE_BODY
from thingstash.live.streamloop import LiveBody

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)

STREAM_POOL = 4  # threads per worker for the reads of its streams
PIECE_LIMIT = 64 * 1024  # the most of a body kept per piece received (granian's own pieces)

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
    """An RSGI application serving `app` (WSGI); see the module's doc."""

    def __init__(self, app: WSGIApplication, body_limit: int, body_timeout: float, bodies: Places):
        self.app = app
        self.body_limit = body_limit
        self.body_timeout = body_timeout
        self.bodies = bodies
        self.pool: ThreadPoolExecutor | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = ThreadPoolExecutor(STREAM_POOL, thread_name_prefix="thingstash-stream")

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            protocol.close(403)  # no WebSocket face yet
            return
        environ = environ_of(scope)
        await self._read_body(environ, protocol)
        answer: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            answer[:] = [int(status[:3]), headers]
            return _no_write

        result = self.app(environ, start_response)
        try:
            live = environ.get(LIVE_BODY)
            if isinstance(live, LiveBody):
                transport = protocol.response_stream(answer[0], answer[1])
                await live.drive(transport.send_bytes, self.pool)
                return
            await self._answer(protocol, answer[0], answer[1], result)
        except Exception as error:  # noqa: BLE001 - the client went away mid-answer
            log.debug("answer not sent whole: %r", error)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    async def _answer(
        self, protocol: Any, status: int, headers: list[tuple[str, str]], result: Iterable[bytes]
    ) -> None:
        """A finite answer: whole when it is one piece or small, else piece by piece. A stream
        the app did not hand over as a LiveBody is iterated on a thread of its own (it must
        not hold the loop)."""
        if any(k.lower() == "content-type" and "event-stream" in v for k, v in headers):
            transport = protocol.response_stream(status, headers)
            loop = asyncio.get_running_loop()
            iterator = iter(result)
            while (piece := await loop.run_in_executor(None, next, iterator, None)) is not None:
                await transport.send_bytes(piece)
            return
        pieces: list[bytes] = []
        size = 0
        iterator = iter(result)
        for piece in iterator:
            pieces.append(piece)
            size += len(piece)
            if size > PIECE_LIMIT and len(pieces) > 1:
                transport = protocol.response_stream(status, headers)
                await transport.send_bytes(b"".join(pieces))
                for more in iterator:
                    await transport.send_bytes(more)
                return
        protocol.response_bytes(status, headers, b"".join(pieces))

    async def _read_body(self, environ: dict[str, Any], protocol: Any) -> None:
        announced = environ.get("CONTENT_LENGTH")
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not chunked and (not announced or announced == "0"):
            environ["wsgi.input"] = io.BytesIO()
            return
        environ[BODY_READ] = True
        if announced and announced.isdigit() and int(announced) > self.body_limit:
            environ["wsgi.input"] = io.BytesIO()  # refused (413) unread
            return
        client = environ.get("REMOTE_ADDR") or ""
        why = self.bodies.take(client)
        if why is not None:
            environ[BODY_BUSY] = why
            environ["wsgi.input"] = io.BytesIO()
            return
        pieces: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                async for piece in protocol:
                    pieces.append(piece)
                    received += len(piece)
                    if received > self.body_limit:
                        break
        except TimeoutError:
            environ[BODY_LATE] = True
        except Exception:  # noqa: BLE001 - the client went away: what arrived is all there is
            log.debug("body cut short", exc_info=True)
        finally:
            self.bodies.give_back(client)
        environ["wsgi.input"] = io.BytesIO(b"".join(pieces))


def _no_write(data: bytes) -> None:
    raise NotImplementedError("write() is not offered: return the body")


def environ_of(scope: Any) -> dict[str, Any]:
    """A WSGI environ for an RSGI request, as granian's own WSGI interface builds it."""
    host, _, port = scope.server.rpartition(":")
    client = scope.client.rpartition(":")[0] or scope.client
    path = scope.path.encode("utf-8").decode("latin-1")
    if "\ufffd" in scope.path:
        path = path.replace("\xef\xbf\xbd", "\xff")  # (see the module's doc)
    environ = dict(_BASE_ENVIRON)
    environ.update(
        {
            "REQUEST_METHOD": scope.method,
            "PATH_INFO": path,
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": host.strip("[]"),
            "SERVER_PORT": port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client.strip("[]"),
            "wsgi.url_scheme": scope.scheme,
        }
    )
    headers: dict[str, str] = {}
    for name, value in scope.headers.items():
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    environ.update(headers)
    return environ
