"""/_metrics: Prometheus text, counted across every worker process.

prometheus-client's multiprocess mode: `thingstash serve` points PROMETHEUS_MULTIPROC_DIR at a
fresh temp dir before the workers start (server.metrics_dir), each worker writes its samples to
files there, and a scrape in any worker sums them all. Without that variable (tests, a plain
WSGI host) the metrics are the one process's own.

Things stored is read at scrape time from Redis (Store.approximate_things: the keys with an
expiry, one INFO call, no scan); it is left out of a scrape while Redis is down.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from thingstash.core import model
from thingstash.web.context import store

_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "thingstash_requests", "HTTP requests answered, by method and status", ["method", "status"]
)
LATENCY = Histogram(
    "thingstash_request_duration_seconds",
    "Time to answer a request (to the first byte of a stream), by method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REDIS_ERRORS = Counter("thingstash_redis_errors", "Store operations failed because of Redis")
WATCHES = Gauge(
    "thingstash_open_watch_streams", "Watch streams open now", multiprocess_mode="livesum"
)
OPEN_STREAMS = Gauge(
    "thingstash_open_streams",
    "Streams open now, of every kind and face (web/capacity.py counts them)",
    multiprocess_mode="livesum",
)

FANOUT_DELAY = Histogram(
    "thingstash_fanout_delay_seconds",
    "From a change's write to its sending to every stream parked on its group's bell (the "
    "oldest change of each ring; live/riding.py)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FANOUT_RING = Histogram(
    "thingstash_fanout_ring_seconds",
    "The loop's time to send a ring's changes to every stream parked on the bell",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)


def observe_ring(took: float, late: float) -> None:
    """live/waiting.py's ring observer."""
    FANOUT_RING.observe(took)
    FANOUT_DELAY.observe(max(late, 0.0))


bp = Blueprint("metrics", __name__)


class _ThingsStored(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            count = store().approximate_things()
        except model.StorageUnavailable:
            return
        yield GaugeMetricFamily(
            "thingstash_things_stored",
            "Things stored (approximate: keys with an expiry in the Redis database)",
            value=count,
        )


@bp.get("/_metrics")
def scrape() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    extra = CollectorRegistry(auto_describe=False)
    extra.register(_ThingsStored())
    return Response(
        generate_latest(registry) + generate_latest(extra), content_type=CONTENT_TYPE_LATEST
    )


_counted: dict[tuple[str, int], tuple[Any, Any]] = {}


def observe(method: str, status: int, seconds: float) -> None:
    """Count one answered request (called by the access log's middleware, which timed it).

    The labelled children are kept per (method, status): `labels()` validates and locks on
    every call, and this runs on every request."""
    label = method if method in _METHODS else "other"  # a client can send any method name
    children = _counted.get((label, status))
    if children is None:
        children = (REQUESTS.labels(label, str(status)), LATENCY.labels(label))
        _counted[(label, status)] = children
    children[0].inc()
    children[1].observe(seconds)


def _redis_error(_: Exception) -> None:
    REDIS_ERRORS.inc()


def init_app(app: Flask) -> None:
    if _redis_error not in model.UNAVAILABLE_HOOKS:
        model.UNAVAILABLE_HOOKS.append(_redis_error)
    app.register_blueprint(bp)
