"""Places that a connection holds for long, counted per worker process and per client, so that
no client can take them all and a request past the count is refused at once (`503` with
`Retry-After`), never left waiting.

Two kinds of request hold a server thread for as long as their client likes: an open stream (a
native watch or live query, a Firebase stream: a GET asking for `text/event-stream`), counted
here (THINGSTASH_MAX_STREAMS per process, THINGSTASH_MAX_STREAMS_PER_CLIENT per client
address), and a body still arriving, counted the same way by bodies.py. The server's thread cap
is sized from these counts (serve/server.py), so ordinary requests and `/_health` always find
a thread. A refusal here is answered outside Flask, so without CORS headers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from thingstash.web import metrics
from thingstash.web.errors import PROBLEM_TYPE, RETRY_AFTER_SECONDS

# (headers, body) of an answer given outside Flask, from (status, title, detail, headers): each
# face words it its own way.
Refusal = Callable[[int, str, str, dict[str, str]], tuple[list[tuple[str, str]], bytes]]


class Places:
    """`total` places, at most `per_client` of them for one client (its address)."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.taken = 0
        self._by_client: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> str | None:
        """Take a place for `client`; None if it got one, else why not (for the refusal)."""
        with self._lock:
            held = self._by_client.get(client, 0)
            if held >= self.per_client:
                return f"this client has {held} open already, the most one client may have"
            if self.taken >= self.total:
                return f"the server has {self.taken} open already, the most it takes"
            self._by_client[client] = held + 1
            self.taken += 1
            return None

    def give_back(self, client: str) -> None:
        with self._lock:
            held = self._by_client.get(client, 0)
            if held <= 1:
                self._by_client.pop(client, None)
            else:
                self._by_client[client] = held - 1
            self.taken -= 1


def asks_for_stream(environ: dict[str, Any]) -> bool:
    return environ.get("REQUEST_METHOD") == "GET" and "text/event-stream" in environ.get(
        "HTTP_ACCEPT", ""
    )


class _Held:
    """A stream's answer, its place given back when the server closes it (the stream ended or
    the client left)."""

    def __init__(self, answer: Iterable[bytes], release: Callable[[], None]) -> None:
        self._answer = answer
        self._release = release
        self._iterator: Iterator[bytes] = iter(answer)

    def __iter__(self) -> Iterator[bytes]:
        return self._iterator

    def __next__(self) -> bytes:
        return next(self._iterator)

    def close(self) -> None:
        try:
            close = getattr(self._answer, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, _nothing
            release()


def _nothing() -> None:
    return None


def cap_streams(
    wsgi_app: Callable[..., Any], places: Places, refuse: Refusal
) -> Callable[..., Any]:
    """Count the streams `wsgi_app` opens in `places`; refuse one past them at once."""

    def capped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not asks_for_stream(environ):
            return wsgi_app(environ, start_response)
        client = environ.get("REMOTE_ADDR") or ""
        why = places.take(client)
        if why is not None:
            headers, body = refuse(
                503,
                "too many streams",
                f"too many open streams: {why}; try again later",
                {"Retry-After": RETRY_AFTER_SECONDS},
            )
            start_response("503 Service Unavailable", headers)
            return [body]
        metrics.OPEN_STREAMS.inc()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                metrics.OPEN_STREAMS.dec()
                places.give_back(client)

        try:
            answer = wsgi_app(environ, start_response)
        except BaseException:
            release()
            raise
        return _Held(answer, release)

    return capped


def problem_refusal(
    status: int, title: str, detail: str, headers: dict[str, str]
) -> tuple[list[tuple[str, str]], bytes]:
    """The native face's answer outside Flask: problem+json."""
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return _answer(PROBLEM_TYPE, body, headers)


def firebase_refusal(
    status: int, title: str, detail: str, headers: dict[str, str]
) -> tuple[list[tuple[str, str]], bytes]:
    """The Firebase face's answer outside Flask: `{"error": ...}`."""
    return _answer("application/json", orjson.dumps({"error": detail}), headers)


def _answer(
    content_type: str, body: bytes, headers: dict[str, str]
) -> tuple[list[tuple[str, str]], bytes]:
    listed = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    listed += [("Cache-Control", "no-store"), *headers.items()]
    return listed, body
