"""`Store`, the protocol every store keeps (thingstash.store's RedisStore and ClusterStore), split
by role and composed, as redis-py composes its command families: `Things`, `Folders`, `Feed`,
`Expiry`, `Keys`, `Queries` and `Service`. The web, live, serve and cli layers are typed against
it, never against a Redis store, and a consumer that needs only some roles takes only those: its
signature says what it touches.

Methods raise the errors of core/model.py (and core/queries.py, core/answers.py), never HTTP
ones. Pure: types only, no Redis, no HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from thingstash.core.answers import Answer
from thingstash.core.indexes import Index
from thingstash.core.model import (
    Backlog,
    Conditions,
    Event,
    Guards,
    KeyRecord,
    Page,
    Thing,
    ThingWrite,
    WriteResult,
)
from thingstash.core.queries import Query

if TYPE_CHECKING:
    import threading


class Turn(Protocol):
    """The judged writes' turn, held (Things.writing_turn)."""

    def renew(self) -> None: ...


class Things(Protocol):
    """Things one by one or a few at once: read, written, deleted, their versions."""

    # The most bytes of JSON a thing may have: every write past it raises TooLarge, nothing
    # written (the app sets it to THINGSTASH_MAX_BODY).
    max_thing_bytes: int

    def get(self, path: str) -> Thing | None: ...

    def put(
        self,
        path: str,
        body: bytes,
        ttl_seconds: int,
        conditions: Conditions = ...,
        event: str = ...,
        version: str | None = ...,
    ) -> WriteResult: ...

    def put_many(
        self,
        things: Sequence[tuple[str, bytes, int]],
        chunk: int = ...,
        max_thing_bytes: int | None = ...,
    ) -> list[WriteResult]: ...

    def delete(self, path: str, conditions: Conditions = ...) -> str | None: ...

    def write_together(
        self, changes: Sequence[ThingWrite], guards: Guards = ...
    ) -> list[WriteResult | None]: ...

    def update(
        self,
        path: str,
        change: Callable[[Thing | None], tuple[bytes, int]],
        conditions: Conditions = ...,
        event: str = ...,
    ) -> tuple[WriteResult, bytes]: ...

    def versions(self, paths: Iterable[str]) -> dict[str, str | None]: ...

    def read_many(self, paths: Sequence[str], values: bool, budget: int) -> list[Thing | None]: ...

    # Whether write_together checks its guards in the step that writes (one Redis), rather than
    # just before its first write (a Redis Cluster: a judged write there holds the turn).
    guards_in_step: bool

    # The judged writes' turn (a lock of the store), held for the block.
    def writing_turn(self) -> AbstractContextManager[Turn]: ...

    # A write of many steps follows, in the block (with `folders`: if what it clears there is
    # not nothing): a judged write's store (firebase/guarding.py) holds the turn for them; the
    # store itself does nothing.
    def many_steps(self, *folders: str) -> AbstractContextManager[None]: ...


class Folders(Protocol):
    """Folders: listed page by page, their names level by level, deleted whole."""

    def list_folder(
        self,
        folder: str,
        after: str | None,
        limit: int,
        values: bool = ...,
        max_value_bytes: int = ...,
    ) -> Page: ...

    def list_names(
        self, starts: Sequence[tuple[str, str | None]], limit: int
    ) -> list[tuple[list[str], str | None]]: ...

    def delete_tree(self, folder: str, batch: int = ...) -> int: ...


class Feed(Protocol):
    """The change feed: its position, what follows a position, blocking reads of it."""

    # Whether the feed has each thing's events in the order of its writes (see live.hub).
    feed_in_order: bool

    def feed_position(self) -> str: ...

    def position_and_get(self, path: str) -> tuple[str, Thing | None]: ...

    def feed_since(self, after: str, count: int = ...) -> Backlog: ...

    def check_feed_node(self) -> None: ...

    def read_feed(self, after: str, block_ms: int, count: int = ...) -> list[Event]: ...


class Expiry(Protocol):
    """Expiry: recorded as `expire` events, reaped from the schedule, heard from Redis."""

    # The store's namespace: a listener's wake channel is named under it.
    prefix: str

    def record_expiry(self, path: str) -> str | None: ...

    def record_expiries(self, paths: Sequence[str]) -> int: ...

    def reap(self, now_ms: int | None = ..., batch: int = ...) -> tuple[int, bool]: ...

    def enable_expiry_notifications(self) -> bool: ...

    def listen_expired(
        self,
        handle: Callable[[list[str]], None],
        stopped: Callable[[], bool],
        wake_channel: str,
    ) -> None: ...

    def wake(self, channel: str) -> None: ...


class Keys(Protocol):
    """API keys (records, never the keys themselves) and whether the store is closed."""

    def key_count(self) -> int: ...

    def is_closed(self) -> bool: ...

    def reopen(self) -> bool: ...

    def add_key(self, record: KeyRecord) -> bool: ...

    def get_key(self, key_id: str) -> KeyRecord | None: ...

    def list_keys(self) -> list[KeyRecord]: ...

    def revoke_key(self, key_id: str) -> bool: ...

    def touch_key(self, key_id: str, when: int) -> None: ...


class Queries(Protocol):
    """Queries of a folder and the indexes that answer them (declared, built, dropped)."""

    def query(
        self,
        folder: str,
        query: Query,
        costly: Callable[[], AbstractContextManager[None]] | None = ...,
    ) -> Answer: ...

    def indexes(self) -> list[Index]: ...

    def create_index(self, folder: str, field: str) -> tuple[Index, bool]: ...

    def drop_index(self, index_id: str) -> Index | None: ...

    def build_indexes(self, stop: threading.Event | None = None) -> int: ...


class Service(Protocol):
    """The store as a service: its size, the rate limiter's storage, health, closing."""

    def approximate_things(self) -> int: ...

    def limiter_storage(self) -> tuple[str, dict[str, Any]] | None: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class Store(Things, Folders, Feed, Expiry, Keys, Queries, Service, Protocol):
    """Every role: what the app as a whole may ask of a store."""
