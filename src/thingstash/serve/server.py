"""Run the app under a production WSGI server: granian, never Flask's development server.

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
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server import Server

from thingstash.config import Settings

STREAM_THREADS = 1024
SHUTDOWN_GRACE_SECONDS = 5

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
    """Drops granian's start-up warning that the thread cap is high for the cores: it is high on
    purpose (STREAM_THREADS, one per open watch stream; `admit` bounds the requests at work)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Configuration allows spawning up to")


def run(
    host: str, port: int, target: str = "thingstash.wsgi:app", settings: Settings | None = None
) -> None:
    """Serve `target` (thingstash's app unless the benchmark asks for its reference app) until
    SIGINT or SIGTERM; settings reach the workers through the environment, which the caller has
    filled (`settings`, when given, are those read from it)."""
    from granian.log import logger as granian_logger

    settings = settings or Settings.from_env()

    granian_logger.addFilter(_ThreadCapNotice())
    Server(
        target,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=settings.workers,
        blocking_threads=settings.threads + STREAM_THREADS,
        backpressure=settings.threads + STREAM_THREADS,
        log_level=LogLevels.warning,
        # A stop waits this long for in-flight requests; idle keep-alive connections and watch
        # streams would otherwise hold it open for ever.
        workers_kill_timeout=SHUTDOWN_GRACE_SECONDS,
    ).serve()


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
