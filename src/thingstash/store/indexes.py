"""Query indexes in Redis: their declarations (cached per process), the index section every write
script carries to keep them, what a thing read for a query is (`Listed`), and what querying and
building need of a store (`IndexedStore`). Building them over what is stored is
store/indexbuild.py's; answering queries from them, store/querying.py's (API.md, "Queries").

Layout (beside store/layout.py's):

- `ns:ix:{d}`: the declarations, a hash from index id to its JSON (core.indexes.Index), and
  `ns:ix:{d}:gen`, a counter raised by every change to them (create, ready, drop). Each process
  keeps the declarations with the generation they are from; every write script gets that
  generation and refuses (STALE_INDEXES) when Redis has another, before writing anything: the
  process reloads and sends again. A write keeps its one round trip in the common case, and no
  write can miss an index declared before it ran.
- `ns:q:{<id>:<folder>}`: for each index and each concrete folder it covers, a sorted set with
  every score 0 whose members are `ordering.sort_key(value) + name`, so Redis orders them as
  Firebase orders values (ZRANGE BYLEX, ZRANK, ZLEXCOUNT);
  `ns:qm:{<id>:<folder>}` the hash name -> member, so that a write or a removal finds the old
  member without reading the old JSON (user JSON is never parsed in Lua). Both share a hash
  tag, so one script reaches both on a cluster.

Members are computed in Python from the JSON being written (ordering.py), and written by
scripts/indexes.lua, prepended to every script that writes or removes things.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from redis.exceptions import ResponseError

from thingstash.core import documents, queries
from thingstash.core.indexes import BUILDING, READY, Index
from thingstash.core.model import StorageUnavailable, Thing, version_time_ms
from thingstash.store.common import load_script

STALE = "STALE_INDEXES"
MARKER = b"\0ix"
STALE_RETRIES = 5

T = TypeVar("T")


class IndexedStore(Protocol):
    """What querying and building indexes use of a store (RedisStore, ClusterStore): its client
    and namespace, its key names, and a few of its reads."""

    @property
    def client(self) -> Any: ...

    @property
    def prefix(self) -> str: ...

    # Whether write and query scripts can check the declarations' generation themselves (one
    # Redis), or a query checks it first (a cluster: another slot).
    @property
    def checks_generation_in_scripts(self) -> bool: ...

    def thing_key(self, path: str) -> str: ...

    def folder_key(self, folder: str) -> str: ...

    def subfolders_key(self, folder: str) -> str: ...

    def folder_names(self, folder: str, after: bytes, count: int) -> list[bytes]: ...

    def read_many(self, paths: Sequence[str], values: bool, budget: int) -> list[Thing | None]: ...

    def record_expiries(self, paths: Sequence[str]) -> int: ...


def write_script(client: Any, name: str, *checks: str) -> Any:
    """A write script with its preludes before it: scripts/folders.lua (folder indexes and
    their sub-folder sets) and scripts/indexes.lua (the index section), then `checks` (scripts
    that may answer before it writes)."""
    checked = "".join(load_script(check) for check in checks)
    return client.register_script(
        load_script("folders.lua") + load_script("indexes.lua") + checked + load_script(name)
    )


def is_stale(error: Exception) -> bool:
    return isinstance(error, ResponseError) and STALE in str(error)


def split_path(path: str) -> tuple[str, str]:
    cut = path.rfind("/") + 1
    return path[:cut], path[cut:]


class Section:
    """The index section of one write script call: the keys and changes for every index of the
    folders the call writes in (see scripts/indexes.lua)."""

    def __init__(self, keeper: IndexKeeper, generation: str, indexes: Sequence[Index]) -> None:
        self.keeper = keeper
        self.generation = generation
        self.indexes = indexes
        self.keys: list[str] = [keeper.generation_key]
        self._pairs: dict[tuple[str, str], int] = {}
        self._changes: list[str | bytes | int] = []

    def _pair(self, index: Index, folder: str) -> int:
        known = self._pairs.get((index.id, folder))
        if known is None:
            known = self._pairs[(index.id, folder)] = len(self._pairs) + 1
            self.keys += (
                self.keeper.zset_key(index.id, folder),
                self.keeper.hash_key(index.id, folder),
            )
        return known

    def put(self, path: str, body: bytes, version: str) -> None:
        """The thing at `path` is written with `body`: its member in each index of its folder."""
        folder, name = split_path(path)
        covering = [index for index in self.indexes if index.covers(folder)]
        if not covering:
            return
        value: Any = None
        parsed = False
        for index in covering:
            field = index.parsed_field
            if not (field.is_name or field.is_updated) and not parsed:
                value, parsed = documents.loads(body), True
            member = queries.member_for(field, name, value, version_time_ms(version))
            self._changes += (self._pair(index, folder), name, member, 0)

    def remove(self, path: str, key_position: int) -> None:
        """The thing at `path` (KEYS[key_position]) is removed, if that key is gone by then."""
        folder, name = split_path(path)
        for index in self.indexes:
            if index.covers(folder):
                self._changes += (self._pair(index, folder), name, b"", key_position)

    def operations(self) -> Iterator[tuple[str, str, str, bytes]]:
        """Each change as (sorted set, hash, name, member or b""): for a Redis Cluster, where
        they are steps of their own (scripts/index_entry.lua)."""
        changes = self._changes
        for at in range(0, len(changes), 4):
            pair, name, member = changes[at], changes[at + 1], changes[at + 2]
            assert isinstance(pair, int) and isinstance(name, str) and isinstance(member, bytes)
            yield self.keys[2 * pair - 1], self.keys[2 * pair], name, member

    def clear(self) -> None:
        """Empty, for the next script call (of a pipelined batch)."""
        self.keys = [self.keeper.generation_key]
        self._pairs = {}
        self._changes = []

    def args(self) -> list[str | bytes | int]:
        return [
            self.generation,
            *self._changes,
            len(self.keys),
            len(self._changes) // 4,
            MARKER,
        ]


class IndexKeeper:
    """The declarations of one namespace, cached in this process, and what their keys are."""

    def __init__(self, client: Any, prefix: str, refresh_s: float | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.declarations_key = f"{prefix}:ix:{{d}}"
        self.generation_key = f"{prefix}:ix:{{d}}:gen"
        # On a cluster no write script can check the generation (another slot): the
        # declarations are read again when older than this.
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._loaded: tuple[str, tuple[Index, ...], float] | None = None
        self._ready = client.register_script(load_script("index_ready.lua"))

    def zset_key(self, index_id: str, folder: str) -> str:
        return f"{self.prefix}:q:{{{index_id}:{folder}}}"

    def hash_key(self, index_id: str, folder: str) -> str:
        return f"{self.prefix}:qm:{{{index_id}:{folder}}}"

    def lease_key(self, index_id: str) -> str:
        return f"{self.prefix}:ix:lease:{index_id}"

    def declared(self) -> tuple[str, tuple[Index, ...]]:
        loaded = self._loaded
        if loaded is None or (
            self.refresh_s is not None and time.monotonic() - loaded[2] > self.refresh_s
        ):
            return self.reload()
        return loaded[0], loaded[1]

    def reload(self) -> tuple[str, tuple[Index, ...]]:
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.generation_key)
        pipe.hgetall(self.declarations_key)
        generation, raw = pipe.execute()
        indexes = tuple(
            sorted(
                (Index.from_json(k.decode(), v) for k, v in raw.items()),
                key=lambda index: (index.created, index.id),
            )
        )
        generation = generation.decode() if generation else "0"
        with self._lock:
            self._loaded = (generation, indexes, time.monotonic())
        return generation, indexes

    def fresh(self) -> tuple[str, tuple[Index, ...]]:
        """The declarations, checked against Redis's generation first (one round trip): for a
        query about to be answered without an index, which no script would refuse."""
        generation, indexes = self.declared()
        current = self.client.get(self.generation_key)
        if (current.decode() if current else "0") != generation:
            return self.reload()
        return generation, indexes

    def section(self) -> Section:
        generation, indexes = self.declared()
        return Section(self, generation, indexes)

    def run(self, call: Callable[[Section], T]) -> T:
        """`call(section)` with a section from the declarations this process holds; again with
        fresh ones when Redis says they are stale."""
        for _ in range(STALE_RETRIES):
            try:
                return call(self.section())
            except ResponseError as error:
                if not is_stale(error):
                    raise
                self.reload()
        raise StorageUnavailable("the index declarations kept changing; try again")

    # -- declaring ----------------------------------------------------------------------------

    def create(self, folder: str, field: str) -> tuple[Index, bool]:
        """Declare an index (building); (the index, False) when the same one exists already."""
        _, indexes = self.reload()
        for index in indexes:
            if index.folder == folder and index.field == field:
                return index, False
        index = Index(secrets.token_hex(6), folder, field, int(time.time()), BUILDING)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.declarations_key, index.id, index.to_json())
        pipe.incr(self.generation_key)
        pipe.execute()
        self.reload()
        return index, True

    def mark_ready(self, index: Index) -> bool:
        """The build is done: the index answers queries. False if it was dropped meanwhile."""
        done = self._ready(
            keys=[self.declarations_key, self.generation_key],
            args=[index.id, replace(index, state=READY).to_json()],
        )
        self.reload()
        return bool(done)

    def drop_declaration(self, index_id: str) -> Index | None:
        _, indexes = self.reload()
        found = next((index for index in indexes if index.id == index_id), None)
        if found is None:
            return None
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(self.declarations_key, index_id)
        pipe.incr(self.generation_key)
        removed, _ = pipe.execute()
        self.reload()
        return found if removed else None


@dataclass(frozen=True, slots=True)
class Listed:
    """A thing read for a query: its name, its state, its member in the query's order and its
    JSON as parsed (None when the order needs no JSON and none was read)."""

    name: str
    thing: Thing
    member: bytes
    value: Any = None
