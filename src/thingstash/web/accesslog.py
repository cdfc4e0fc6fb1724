"""Request ids and structured access logs: one JSON line per request on the
`thingstash.access` logger (stderr unless configured otherwise).

The id is the client's `X-Request-ID` if it is a sane token (so a proxy's id follows the request
through), else a new random one; either way it is echoed in the response. The log line holds
the method, path, status, duration, client address and, for a request with a key, the key's id:
never the key, the Authorization header or the query string.

This is WSGI middleware around the Flask app rather than Flask hooks: it reads the environ and
the status line directly, with none of Flask's per-request proxies, because it runs on every
request and the hot path's budget is a few microseconds per feature. Other per-request
observers (the metrics) are called from here with what it has already measured, so the time of
a request is taken once.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable, Iterable
from random import getrandbits
from typing import Any, TextIO

import orjson

from thingstash.core.config import MAX_PATH_BYTES

log = logging.getLogger("thingstash.access")

HEADER = "X-Request-ID"
KEY_ID = "thingstash.key_id"  # environ entry where auth leaves the id of the request's key
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# A client picks the path and the User-Agent: cut them so that a line stays well under PIPE_BUF
# (4 KiB), whose writes are atomic, and lines of requests in flight at once don't interleave.
_LONGEST_PATH = MAX_PATH_BYTES  # the longest valid path
_LONGEST_AGENT = 512

# (method, status, seconds) of every answered request; seconds to the start of the response.
Observer = Callable[[str, int, float], None]
_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The handler `to_stderr` installs; the middleware writes straight to its file descriptor
    while it is the logger's only handler."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        try:
            self.fd: int | None = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # a stand-in stream without a descriptor
            self.fd = None


class AccessLog:
    """Gives each request its id, and writes its access line once the status is known."""

    def __init__(self, app: _WSGIApp, observers: tuple[Observer, ...] = ()) -> None:
        self.app = app
        self.observers = observers
        self.pid = os.getpid()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.perf_counter()
        incoming = environ.get("HTTP_X_REQUEST_ID")
        # Python's own generator (see model.new_version): an id tells requests apart, it
        # guards nothing, and secrets' getrandom() call would let go of the GIL on every request.
        rid = incoming if incoming and _SANE_ID.fullmatch(incoming) else f"{getrandbits(96):024x}"

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seconds = time.perf_counter() - started
            headers.append((HEADER, rid))
            code = int(status[:3])
            method = environ["REQUEST_METHOD"]
            for observer in self.observers:
                observer(method, code, seconds)
            if log.isEnabledFor(logging.INFO):
                self._write(environ, rid, method, code, seconds, headers)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def _write(
        self,
        environ: dict[str, Any],
        rid: str,
        method: str,
        status: int,
        seconds: float,
        headers: list[tuple[str, str]],
    ) -> None:
        size = next((v for k, v in headers if k == "Content-Length"), None)
        line = orjson.dumps(
            {
                "ts": round(time.time(), 3),
                "request_id": rid,
                "method": method,
                "path": _path(environ),
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "bytes": int(size) if size is not None else None,
                "client": environ.get("REMOTE_ADDR"),
                "key_id": environ.get(KEY_ID),
                "user_agent": environ.get("HTTP_USER_AGENT", "")[:_LONGEST_AGENT] or None,
                "pid": self.pid,  # which worker answered
            }
        )
        handlers = log.handlers
        direct = handlers[0] if len(handlers) == 1 and not log.propagate else None
        if isinstance(direct, _StderrHandler) and direct.fd is not None:
            # Our own stderr handler: the line skips the LogRecord, locks and formatting that
            # logging would spend on it, and is written with others (_Batches).
            _batches.add(direct.fd, line + b"\n")
        else:
            log.info(line.decode())


def _path(environ: dict[str, Any]) -> str:
    # PEP 3333 hands the path over as latin-1 code points of the raw bytes.
    raw: str = environ.get("PATH_INFO", "")[:_LONGEST_PATH]
    return raw.encode("latin-1", "replace").decode("utf-8", "replace")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Batches:
    """Access lines written a batch at a time, by a thread of their own, at most FLUSH_AFTER_S
    after they were made.

    A write(2) lets go of the GIL, and under load another request's thread takes it: a thread
    switch on every request (bench A/B: writing each line at once cost a few % of PUT's req/s).
    Gathered, a busy worker writes a few times in FLUSH_AFTER_S instead of once per request.
    Each write holds whole lines and at most PIPE_BUF bytes, so that it is atomic on a pipe and
    the lines of the workers, which share stderr, never interleave (a single line longer than
    that, possible only for a path of escaped control characters, is written alone). Past
    MOST_WAITING lines (stderr stuck) the request's own thread writes, as each did before.
    Lines still waiting are written when the process ends: at exit, and when a forked
    multiprocessing child (a granian worker) ends, which skips atexit; a worker killed
    outright loses at most FLUSH_AFTER_S of them.
    """

    FLUSH_AFTER_S = 0.05
    MOST_WAITING = 10_000

    def __init__(self) -> None:
        self._start()
        # A forked worker starts with the lines of its parent written, and its own thread.
        os.register_at_fork(before=self.flush, after_in_child=self._start)
        atexit.register(self.flush)

    def _start(self) -> None:
        self._lock = threading.Lock()  # guards _waiting and _thread
        self._writing = threading.Lock()  # one write at a time: lines stay in order
        self._waiting: list[tuple[int, bytes]] = []
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def add(self, fd: int, line: bytes) -> None:
        with self._lock:
            self._waiting.append((fd, line))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="thingstash-access-log", daemon=True
                )
                self._thread.start()
                # A forked multiprocessing child ends with os._exit, after running these (it
                # clears those of its parent as it starts, before it serves a request).
                multiprocessing.util.Finalize(None, self.flush, exitpriority=10)
            waiting = len(self._waiting)
        if waiting == 1:
            self._wake.set()
        elif waiting >= self.MOST_WAITING:
            self.flush()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.FLUSH_AFTER_S)  # let the lines of the next requests join
            self.flush()

    def flush(self) -> None:
        with self._writing:
            with self._lock:
                waiting, self._waiting = self._waiting, []
                self._wake.clear()
            chunk: list[bytes] = []
            size = 0
            for index, (fd, line) in enumerate(waiting):
                chunk.append(line)
                size += len(line)
                after = waiting[index + 1] if index + 1 < len(waiting) else None
                if after is None or after[0] != fd or size + len(after[1]) > select.PIPE_BUF:
                    try:
                        _write_all(fd, b"".join(chunk))
                    except OSError:
                        pass  # stderr is gone: nowhere to say so, and requests go on
                    chunk, size = [], 0


_batches = _Batches()


def to_stderr() -> None:
    """Access lines to stderr as bare JSON, one per line (what `thingstash serve` does, and
    what a WSGI host gets when it set up no logging of its own)."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _configure() -> None:
    if log.handlers or logging.getLogger().handlers:
        if log.level == logging.NOTSET:
            log.setLevel(logging.INFO)
        return
    to_stderr()


def init_app(app: Any, observers: tuple[Observer, ...] = ()) -> None:
    """Wrap the Flask app's WSGI callable; `observers` hear of every request as it is answered."""
    _configure()
    app.wsgi_app = AccessLog(app.wsgi_app, observers)
