"""The admission gate: how many requests a worker works on at once (THINGSTASH_THREADS), and the
smaller gate for costly work within it (THINGSTASH_COSTLY_QUERIES: queries computed without an
index, which read up to a few MiB of JSON each)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from thingstash.core.environ import ON_LOOP
from thingstash.web.errors import RETRY_AFTER_SECONDS, Problem

# The request's place in the gate, in its WSGI environ: costly work waiting for its own gate
# gives the place back meanwhile (CostlyGate).
PLACE = "thingstash.admission.place"
# The worker's CostlyGate, in its app's extensions.
COSTLY = "thingstash.admission.costly"
# How long costly work waits for its gate before the request is answered 503 (Retry-After).
COSTLY_WAIT_S = 5.0


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
            environ[PLACE] = gate
            return wsgi_app(environ, start_response)

    return admitted


class Busy(Problem):
    """Costly work waited COSTLY_WAIT_S for its gate in vain: 503, to be asked again."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "busy",
            "too many queries without an index are being answered right now; retry shortly, "
            "or create an index on the field (README, Queries)",
            {"Retry-After": RETRY_AFTER_SECONDS},
        )


class CostlyGate:
    """At most `at_once` pieces of costly work at a time in this worker (an unindexed query
    reads and parses up to queries.MAX_UNINDEXED_BYTES of JSON). One that finds the gate full
    waits for it without holding its request's place in `admit`'s gate, so plain reads and
    writes keep their places whatever the number of costly requests waiting; past `wait_s` it
    is refused with 503 and Retry-After. Work outside any request (a live query's new answer,
    iterated after its place was given back) waits the same way."""

    def __init__(self, at_once: int, wait_s: float = COSTLY_WAIT_S) -> None:
        self._slots = threading.Semaphore(at_once)
        self.wait_s = wait_s
        self.waiting = 0  # how many wait for the gate now (approximate: no lock)

    @contextmanager
    def entered(
        self, place: threading.Semaphore | None = None, wait: bool = True
    ) -> Iterator[None]:
        """`wait` False: refused at once when the gate is full (on an event loop, where a wait
        would hold every other request and stream of the worker)."""
        if not self._slots.acquire(blocking=False):
            if not wait:
                raise Busy()
            if place is not None:
                place.release()  # waiting costs the others nothing
            self.waiting += 1
            try:
                got = self._slots.acquire(timeout=self.wait_s)
            finally:
                self.waiting -= 1
                if place is not None:
                    place.acquire()  # back in line for a place, behind those waiting
            if not got:
                raise Busy()
        try:
            yield
        finally:
            self._slots.release()


def costly(
    gate: CostlyGate, environ: dict[str, Any] | None, wait: bool = True
) -> Callable[[], AbstractContextManager[None]]:
    """What the store enters around costly work of this request (`environ`: None outside
    one): `gate`, giving the request's place back while it waits; on the async front's event
    loop (core/environ.ON_LOOP), or with `wait` False, refused at once when it is full."""
    place = environ.get(PLACE) if environ is not None else None
    wait = wait and not (environ is not None and environ.get(ON_LOOP))
    return lambda: gate.entered(place, wait)
