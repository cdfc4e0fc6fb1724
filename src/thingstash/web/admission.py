"""The admission gate: how many requests a worker works on at once (THINGSTASH_THREADS)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def admit(wsgi_app: Callable[..., Any], at_once: int) -> Callable[..., Any]:
    """Let `at_once` requests into the app at a time; the others wait for a place.

    Granian gives every request in flight its own thread (it must: each open watch stream holds
    one), and dozens of threads contending for the GIL spend the CPU on handing it over. Only
    the app call is gated, which builds the response: a watch stream's body is iterated after
    it, so open streams don't hold a place; and the request body has been read before it
    (bodies.read_first), so a client sending slowly doesn't hold one either.
    """
    gate = threading.Semaphore(at_once)  # release() wakes the longest waiter first

    def admitted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with gate:
            return wsgi_app(environ, start_response)

    return admitted
