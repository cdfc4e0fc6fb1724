"""Run the app under a production server: granian, never Flask's development server.

Two fronts (Settings.front, THINGSTASH_FRONT). "async", the default: granian's ASGI interface,
one event loop per worker, the WSGI app called on it and every stream a coroutine
(serve/asgi.py says why and what it measured); a worker more than the cores. "threads": granian's
WSGI interface, as the rest of this note describes: a blocking thread per request at work and
per open stream.

Chosen by measurement on a 2-core machine (wrk, 16 connections, a Flask view doing one Redis
GET): granian 2 workers x 32 threads ~3,400 req/s; gunicorn+gevent 2 workers ~2,300; gunicorn
gthread 2x8 ~2,100. Granian's blocking threads grow on demand up to the cap, so the cap is set
high: each open watch stream holds one, and hundreds must not starve ordinary requests. How many
requests a worker works on at once is set apart, by web.admission.admit (THINGSTASH_THREADS,
default 8): at 64 connections that gave ~20% more req/s than letting every thread in (wrk, 2
cores). Workers and threads come from Settings (THINGSTASH_WORKERS, THINGSTASH_THREADS).

Workers follow the cores (config.DEFAULT_WORKERS: one per core the process may use, at least
2): a worker runs Python on one core at a time (its GIL), so fewer leave cores idle, and more
only add processes, Redis connections and memory. Measured again once the fast path made a
request ~50 us of Python (wrk, GET and PUT at 16 and 64 connections, 2 cores shared with wrk,
Redis and other work): 1 worker gave about half the req/s of 2; 2x8, 2x4, 3x4 and 4x2 came out
within the run-to-run noise of each other (+-30% on that machine), so 8 places a worker stay.

Connections (issue 21): a worker accepts as many as it may open files (`backpressure`; the soft
RLIMIT_NOFILE is raised to the hard one first), so idle and slow connections cost a file each
and never make the server stop accepting while it has files left. What holds a thread for long
is counted and refused past its count with a `503` at once: open streams (web/capacity.py) and
bodies still arriving (web/bodies.py). The thread cap is the sum of those counts, the admitted
requests and THREAD_HEADROOM, so a request that is neither (`/_health`, a GET, a refusal) always
finds a thread. A connection that sends part of a request's headers, or idles between requests,
is closed after THINGSTASH_HEADER_TIMEOUT (granian's header_read_timeout, which hyper applies to
both; a connection that sends nothing at all is not timed by it: it holds only a file).
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import Server

from thingstash.core.config import Settings

SHUTDOWN_GRACE_SECONDS = 5
# Threads beyond the counted ones: requests waiting for a place in admission.admit, refusals,
# `/_health`.
THREAD_HEADROOM = 64
# Files a worker keeps for other than connections: Redis, the metric files, logs, libraries.
FILES_KEPT = 256

log = logging.getLogger(__name__)


@contextmanager
def metrics_dir() -> Iterator[str]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for the workers' metric files, removed at exit (a stale
    one would carry old counts into the next run)."""
    path = tempfile.mkdtemp(prefix="thingstash-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    try:
        yield path
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        shutil.rmtree(path, ignore_errors=True)


class _ThreadCapNotice(logging.Filter):
    """Drops granian's start-up warnings that the thread cap is high for the cores (it is high
    on purpose: one per open stream and body arriving; `admit` bounds the requests at work) and
    that the workers outnumber the cores (one more on purpose: config.DEFAULT_WORKERS)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(
            ("Configuration allows spawning up to", "Configured number of workers appears")
        )


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit (the workers inherit
    it); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # an infinite hard limit, or a platform that refuses
            log.warning("could not raise the open files limit from %d", soft)
    return soft


def threads_per_worker(settings: Settings) -> int:
    """Granian's thread cap: every thread holder that may stay long is counted below it."""
    return settings.threads + settings.max_streams + settings.max_bodies + THREAD_HEADROOM


def connections_per_worker(open_files: int) -> int:
    return max(64, open_files - FILES_KEPT)


NATIVE = "thingstash.workers.native"


def run(
    host: str,
    port: int,
    target: str = NATIVE,
    settings: Settings | None = None,
) -> None:
    """Serve `target` until SIGINT or SIGTERM: a workers module of thingstash's (its `front` on
    the async front, its WSGI `app` on threads: Settings.front), or a WSGI app named in full
    (`module:app`: the benchmark's reference apps). Settings reach the workers through the
    environment, which the caller has filled (`settings`, when given, are those read from it)."""
    from granian.log import logger as granian_logger

    settings = settings or Settings.from_env()
    granian_logger.addFilter(_ThreadCapNotice())
    common: dict[str, Any] = {
        "address": host,
        "port": port,
        "workers": settings.workers,
        "backpressure": connections_per_worker(raise_open_files_limit()),
        "http1_settings": HTTP1Settings(header_read_timeout=settings.header_timeout * 1000),
        "log_level": LogLevels.warning,
        "workers_kill_timeout": SHUTDOWN_GRACE_SECONDS,
    }
    if ":" not in target and settings.front == "async":
        # On uvloop, a dependency (asyncio where there is none: Windows).
        Server(f"{target}:front", interface=Interfaces.ASGINL, loop=Loops.auto, **common).serve()
        return
    wsgi_target = target if ":" in target else f"{target}:app"
    Server(
        wsgi_target,
        interface=Interfaces.WSGI,
        blocking_threads=threads_per_worker(settings),
        **common,
    ).serve()


def expose_protocol(key: str) -> None:
    """Put granian's answer object of each request (its `response_bytes`) in the request's
    environ under `key`, so that web.bodies can answer a late body `408` while the request's
    thread still waits in its read (granian cannot stop that read). Granian's WSGI workers have
    no hook for it, so this wraps the callback wrapper a worker builds once the app is loaded
    (a private name, as on_worker_shutdown's: if it is gone, a late body is answered when its
    read returns, which for one that stalls is when its client goes)."""
    try:
        from granian.server import mp
    except ImportError:  # pragma: no cover - not under granian
        return
    original = getattr(mp, "_wsgi_call_wrap", None)
    if original is None:
        log.warning("granian changed: a stalled body is answered only when its client goes")
        return
    if getattr(original, "thingstash_exposes", False):
        return

    def call_wrap(callback: Any, *args: Any) -> Any:
        inner = original(callback, *args)

        def with_protocol(protocol: Any, scope: dict[str, Any]) -> Any:
            scope[key] = protocol
            return inner(protocol, scope)

        return with_protocol

    call_wrap.thingstash_exposes = True  # type: ignore[attr-defined]
    setattr(mp, "_wsgi_call_wrap", call_wrap)  # noqa: B010 - private, untyped on purpose


def on_worker_shutdown(hook: Callable[[], None]) -> None:
    """Call `hook` when this granian worker is told to stop, before it waits for the requests
    in flight to finish: open watch streams never finish by themselves, so without it a stop
    would wait for the kill timeout. The worker ignores SIGINT (see below): its server stops it
    with SIGTERM. Granian has no worker hook for WSGI, so this wraps the
    signal setup a worker does after loading the app (a private function: if it is gone, the
    kill timeout still ends the streams)."""
    try:
        from granian import _signals
    except ImportError:  # pragma: no cover - not under granian
        return
    original = getattr(_signals, "set_sync_signals", None)
    if original is None:
        log.warning("granian changed: watch streams will end only at the kill timeout")
        return

    def set_sync_signals() -> Any:
        event = original()
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: FrameType | None) -> None:
            hook()
            if callable(previous):
                previous(signum, frame)

        signal.signal(signal.SIGTERM, handler)
        # A Ctrl-C reaches the whole process group, workers included, as well as the server
        # process, which then stops each worker with SIGTERM. Taken by a worker directly, it
        # left the worker stuck until the kill timeout (granian 2.x), its streams cut off:
        # the worker leaves the stop to its server.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return event

    _signals.set_sync_signals = set_sync_signals

    original_loop = getattr(_signals, "set_loop_signals", None)
    if original_loop is None:
        log.warning("granian changed: streams will end only at the kill timeout")
        return

    def set_loop_signals(loop: Any) -> Any:
        # The async front's workers: the same, the handlers run by the loop.
        event = original_loop(loop)

        def stop() -> None:
            hook()
            event.set()

        loop.add_signal_handler(signal.SIGTERM, stop)
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return event

    _signals.set_loop_signals = set_loop_signals
