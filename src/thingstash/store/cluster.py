"""ClusterStore: the same keys and scripts as RedisStore (single.py), split by hash slot.

A thing's key, its folder indexes and the change feed live in different slots, usually on
different nodes, so one Lua script cannot touch them all. What stays atomic: everything about one
thing (its key alone is written by put.lua/delete.lua, with the preconditions checked in the same
step), so PUT, PATCH, If-Match/If-None-Match and increments behave exactly as on one Redis. What
follows the thing, as separate steps, is its folder index entries and its feed entry. The order
of those steps is chosen so that an interrupted write (a crash, a failover) leaves at worst an
index entry for a thing that does not exist, which listings skip and remove, never a thing that
exists but is not listed:

- a write that may create a thing first adds its name to every ancestor folder index, then
  writes the thing, and, if it created it, adds the names again (a concurrent cleanup may have
  taken them out in between);
- whoever removes an index entry (a delete, or a listing that found it stale) checks afterwards
  whether the thing or folder is there after all, and puts its whole ancestry back if so;
- a delete takes folders it leaves empty out of their parents, level by level, in the same
  careful way; listings skip (and remove) empty folders that an interruption left behind;
- a folder index and its sub-folder set (single.py) share a slot: a sub-folder's entry is
  added or removed by folder_entries.lua, which keeps the set in the same step; a thing's
  entry stays a plain ZADD or ZREM;
- the expiry schedule is split in SCHEDULE_SHARDS sorted sets (one slot each); a write sets its
  thing's entry after the thing, with ZADD LT (the earliest end wins), so whatever the order of
  racing writes an entry is never later than its thing's end; the reaper checks each due thing
  at its own key and gives one still alive its real end. An interruption before the entry is
  set leaves the thing to Redis's own expiry and its notification (and to listings).

docs/cluster.md gives the guarantees that follow.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.client import PubSub
from redis.cluster import ClusterPipeline, RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, FieldT

from thingstash.core.config import MAX_PAGE_VALUE_BYTES
from thingstash.core.indexes import Index
from thingstash.core.model import (
    NO_CONDITIONS,
    VERSION_LENGTH,
    Backlog,
    Conditions,
    Event,
    Page,
    PartlyWritten,
    PreconditionFailed,
    Thing,
    ThingMissing,
    ThingWrite,
    WriteResult,
    check_size,
    new_version,
    parse_event_id,
)
from thingstash.store.common import (
    CONNECT_TIMEOUT_S,
    FEED_BLOCK_MAX_MS,
    REAP_BATCH,
    REAP_GRACE_MS,
    REPLY_TIMEOUT_S,
    SUBFOLDERS_SUFFIX,
    UNAVAILABLE_OR_OS_ERRORS,
    ancestry,
    backlog_from,
    byte_strings,
    encode_condition,
    ensure_expiry_notifications,
    events_of_xread,
    limiter_options,
    load_script,
    unavailable_on_redis_errors,
)
from thingstash.store.indexes import Listed
from thingstash.store.querying import Querying
from thingstash.store.single import RedisStore, names_and_cursors

_NODES_REFRESH_S = 5.0  # how often the expiry listener looks for new or returning nodes
_POLL_S = 0.05  # per node and turn: a turn over 6 nodes takes about 0.3 s when all is quiet
# Shards of the expiry schedule: each a sorted set in a slot of its own, so the reaper reads
# them all in one pipelined batch (one round trip per node), and one settle.lua call per shard.
SCHEDULE_SHARDS = 16
# A feed entry as XADD takes it: e(vent), p(ath), and for a write d(ata) and t(tl ms).
EventFields = dict[FieldT, EncodableT]


class ClusterStore(RedisStore):
    """Things in a Redis Cluster. Same methods and errors as RedisStore."""

    # redis-py types RedisCluster apart from Redis (no common base), though it takes every
    # command the methods inherited from RedisStore send: hence the two ignores below.
    client: RedisCluster  # type: ignore[assignment]
    # Events of one thing can reach the feed in another order than its writes (see live.hub).
    feed_in_order = False
    # The index declarations live in another slot than the things: no write script can check
    # them, so each process reads them again when they are a second old (docs/cluster.md).
    checks_generation_in_scripts = False
    declarations_refresh_s = 1.0

    def __init__(
        self,
        client: RedisCluster,
        prefix: str = "ts",
        feed_retention: int = 10_000,
        url: str | None = None,
    ) -> None:
        super().__init__(client, prefix, feed_retention, url)  # type: ignore[arg-type]
        self._index_entry = self.client.register_script(load_script("index_entry.lua"))
        self.querying = ClusterQuerying(self, self.index_keeper)
        self._feed_node = self.client.register_script(load_script("feed_node.lua"))
        self._feed_replid: str | None = None
        self._feed_lock = threading.Lock()
        self._settle = self.client.register_script(load_script("settle.lua"))
        self._subfolder_keys: dict[str, str] = {}  # folder -> its set's key, when not the usual
        self._folder_entries = self.client.register_script(
            load_script("folders.lua") + load_script("folder_entries.lua")
        )

    def subfolders_key(self, folder: str) -> str:
        """As on one Redis, the index's key and a suffix, when that shares its slot. Not when
        the index's hash tag is empty (`ns:f:{}`, the top level; a folder starting with `}`),
        so that the whole key is hashed: then a key of its own, with a hash tag picked to land
        in the index's slot."""
        index = self.folder_key(folder)
        key = index + SUBFOLDERS_SUFFIX
        if key_slot(key.encode("utf-8", "surrogatepass")) == key_slot(
            index.encode("utf-8", "surrogatepass")
        ):
            return key
        found = self._subfolder_keys.get(folder)
        if found is None:
            slot = key_slot(index.encode("utf-8", "surrogatepass"))
            tag = 0
            while key_slot(f"{self.prefix}:fsub:{{{tag}}}".encode()) != slot:
                tag += 1  # (16,384 slots: about as many tries, under 10 ms)
            found = self._subfolder_keys[folder] = f"{self.prefix}:fsub:{{{tag}}}:{folder}"
        return found

    def _subfolders_of(self, index: str) -> str:
        """The sub-folder set of the folder index `index` (a key folder_key made)."""
        head = f"{self.prefix}:f:{{"
        return self.subfolders_key(index[len(head) : -1])

    def schedule_key(self, path: str) -> str:
        shard = zlib.crc32(path.encode("utf-8", "surrogatepass")) % SCHEDULE_SHARDS
        return f"{self.prefix}:x:{{{shard}}}"

    def _schedule_keys(self) -> list[str]:
        return [f"{self.prefix}:x:{{{shard}}}" for shard in range(SCHEDULE_SHARDS)]

    def _ancestry_keys(self, path: str) -> list[tuple[str, str]]:
        """(folder index key, name in it) for every level above `path`, its parent first."""
        return [(self.folder_key(folder), name) for folder, name in ancestry(path)]

    def _change_entry(
        self, pipe: ClusterPipeline, key: str, name: str, add: bool, scripted: list[Any]
    ) -> None:
        """Queue adding (or removing) `name` in the folder index `key`: a thing's name is a
        plain ZADD (ZREM); a sub-folder's is folder_entries.lua, which keeps the folder's
        sub-folder set in the same step. Scripted calls are noted in `scripted` for
        _execute (a node that lacks the script)."""
        if not name.endswith("/"):
            if add:
                pipe.zadd(key, {name: 0})
            else:
                pipe.zrem(key, name)
            return
        keys = [key, self._subfolders_of(key)]
        args = ["add" if add else "remove", name]
        scripted.append((len(pipe), keys, args))
        # (the evalsha method is refused in cluster pipelines; the command routes by its key)
        pipe.execute_command("EVALSHA", self._folder_entries.sha, 2, *keys, *args)

    def _execute(
        self, pipe: ClusterPipeline, scripted: list[Any], raise_on_error: bool = True
    ) -> list[Any]:
        """pipe.execute(), with each folder_entries.lua call a node refused for lack of the
        script sent again (the plain call loads it)."""
        replies = pipe.execute(raise_on_error=False)
        for position, keys, args in scripted:
            if isinstance(replies[position], NoScriptError):
                replies[position] = self._folder_entries(keys=keys, args=args)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies

    def _change_entries(self, key: str, names: Sequence[str], add: bool) -> None:
        """Add (or remove) names in one folder index, one pipelined batch."""
        pipe = self.client.pipeline(transaction=False)
        scripted: list[Any] = []
        for name in names:
            self._change_entry(pipe, key, name, add, scripted)
        self._execute(pipe, scripted)

    def _index(
        self,
        entries: Iterable[tuple[str, str]],
        feed: EventFields | None = None,
        expires_at_ms: int | None = None,
    ) -> str | None:
        """Add names to folder indexes (and one thing's expiry to the schedule, and its event to
        the feed) in one pipelined batch; return the event id."""
        pipe = self.client.pipeline(transaction=False)
        scripted: list[Any] = []
        for key, name in entries:
            self._change_entry(pipe, key, name, True, scripted)
        if feed is not None and expires_at_ms is not None:
            path = str(feed["p"])
            pipe.zadd(self.schedule_key(path), {path: expires_at_ms}, lt=True)
        if feed is not None:
            self._log_event(feed, pipe)
        results = self._execute(pipe, scripted)
        event_id: bytes | None = results[-1] if feed is not None and results else None
        return event_id.decode() if event_id is not None else None

    def _log_event(
        self, fields: EventFields, client: RedisCluster | ClusterPipeline | None = None
    ) -> Any:
        """Append an event to the feed (XADD, trimmed to about the retention) on `client` (a
        pipeline, or the store's client): the one place a cluster write logs its event."""
        return (client or self.client).xadd(
            self.feed_key, fields, maxlen=int(self.feed_retention), approximate=True
        )

    def _restore_if_present(self, paths: list[str]) -> None:
        """After index entries were removed: put back the whole ancestry of those still there."""
        if not paths:
            return
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            pipe.exists(self.folder_key(path) if path.endswith("/") else self.thing_key(path))
        present = [path for path, there in zip(paths, pipe.execute(), strict=True) if there]
        entries = [entry for path in present for entry in self._ancestry_keys(path)]
        if entries:
            self._index(entries)

    # -- query indexes ------------------------------------------------------------------------
    # The thing and its query index entries are in different slots: an entry follows its
    # thing's write, delete or expiry as a step of its own (scripts/index_entry.lua), after
    # it, so an interrupted write leaves an entry at worst stale, never missing for a thing
    # that exists. A query checks each entry it shows against the thing it reads and repairs
    # it (ClusterQuerying.repair); docs/cluster.md says what follows.

    def set_index_entries(self, operations: Sequence[tuple[str, str, str, bytes, bytes]]) -> None:
        """index_entry.lua for each (sorted set, hash, name, member, when), one pipelined batch."""
        if not operations:
            return
        pipe = self.client.pipeline(transaction=False)
        for zset, hash_key, name, member, when in operations:
            # (the evalsha method is refused in cluster pipelines; the command routes by its key)
            pipe.execute_command(
                "EVALSHA", self._index_entry.sha, 2, zset, hash_key, name, member, when
            )
        replies = pipe.execute(raise_on_error=False)
        for (zset, hash_key, name, member, when), reply in zip(operations, replies, strict=True):
            if isinstance(reply, NoScriptError):
                self._index_entry(keys=[zset, hash_key], args=[name, member, when])
            elif isinstance(reply, Exception):
                raise reply

    def _reindex(self, written: Sequence[tuple[str, bytes, str]]) -> None:
        """The entries of things just written (path, body, version) in every index of their
        folder: no round trip when none covers it."""
        section = self.index_keeper.section()
        for path, body, version in written:
            section.put(path, body, version)
        self.set_index_entries(
            [
                (zset, hash_key, name, member, b"")
                for zset, hash_key, name, member in section.operations()
            ]
        )

    def _unindex(self, paths: Sequence[str]) -> None:
        """Take things found gone out of every index of their folder; one written again
        meanwhile (its entry may have been set before this step) gets its entry back."""
        section = self.index_keeper.section()
        for path in paths:
            section.remove(path, 0)
        operations = [(z, h, name, b"", b"") for z, h, name, _ in section.operations()]
        if not operations:
            return
        self.set_index_entries(operations)
        back = [
            (path, found.body, found.version)
            for path, found in zip(paths, self.read_many(paths, True, 2**62), strict=False)
            if found is not None
        ]
        if back:
            self._reindex(back)

    @unavailable_on_redis_errors
    def list_names(
        self, starts: Sequence[tuple[str, str | None]], limit: int
    ) -> list[tuple[list[str], str | None]]:
        """As RedisStore.list_names, the folders' indexes on their own slots: one pipelined
        batch of ZRANGEs (a round trip per node)."""
        if not starts:
            return []
        pipe = self.client.pipeline(transaction=False)
        for folder, after in starts:
            start = b"(" + after.encode("utf-8", "surrogatepass") if after else b"-"
            pipe.zrange(self.folder_key(folder), start, b"+", bylex=True, offset=0, num=limit + 1)
        return names_and_cursors(pipe.execute(), limit)

    @unavailable_on_redis_errors
    def read_many(self, paths: Sequence[str], values: bool, budget: int) -> list[Thing | None]:
        """As RedisStore.read_many, each thing in its own slot: its version, lifetime and size
        in one pipelined batch, then (with `values`) the things that fit in `budget`."""
        if not paths:
            return []
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            key = self.thing_key(path)
            pipe.getrange(key, 0, VERSION_LENGTH - 1)
            pipe.pttl(key)
            pipe.strlen(key)
        replies = pipe.execute()
        states = []
        used = 0
        for i in range(len(paths)):
            version, ttl_ms, size = replies[3 * i : 3 * i + 3]
            if values and used > 0 and used + size > budget:
                break
            used += size
            states.append((version, ttl_ms))
        bodies: list[bytes | None] = []
        if values:
            pipe = self.client.pipeline(transaction=False)
            for path in paths[: len(states)]:
                pipe.get(self.thing_key(path))
            bodies = pipe.execute()
        found: list[Thing | None] = []
        for i, (version, ttl_ms) in enumerate(states):
            payload = bodies[i] if values else version
            found.append(Thing.from_payload(payload, ttl_ms) if payload and ttl_ms != -2 else None)
        return found

    # -- things -------------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def put(
        self,
        path: str,
        body: bytes,
        ttl_seconds: int,
        conditions: Conditions = NO_CONDITIONS,
        event: str = "put",
        version: str | None = None,
    ) -> WriteResult:
        check_size(path, body, self.max_thing_bytes)
        now_ms = time.time_ns() // 1_000_000
        version = version or new_version(now_ms)
        ttl_ms = ttl_seconds * 1000
        payload = version.encode("ascii") + body
        entries = self._ancestry_keys(path)
        keys = [self.thing_key(path)]
        args = self._put_args(conditions, payload, ttl_ms, event, path, now_ms + ttl_ms)
        indexed = True
        if conditions.if_match is None:
            # The write may create the thing: its index entries go in the same pipelined batch
            # (other nodes, so in no order with it).
            (status, detail), indexed = self._with_index(entries, keys, args)
        else:
            status, detail = self._put(keys=keys, args=args)  # it exists, so it is indexed
        if status == 0:
            raise PreconditionFailed(detail.decode("ascii") if detail else None)
        created = status == 1
        # A create indexes itself again after the fact: a listing's cleanup may have run between
        # the two steps. So does any write whose index step failed (a node failing over): that
        # request answers 503 if this fails too, and the client's retry indexes it.
        event_id = self._index(
            entries if created or not indexed else (),
            {"e": event, "p": path, "d": payload, "t": str(ttl_ms)},
            now_ms + ttl_ms,
        )
        self._reindex([(path, body, version)])
        return WriteResult(created, version, ttl_ms, event_id)

    def _put_chunk(self, things: Sequence[tuple[str, bytes, int]]) -> list[WriteResult]:
        """RedisStore.put_many's chunk in put()'s steps, each one pipelined batch for the chunk: the
        folder index entries (each folder once), the things (put.lua on each thing's key), then
        the entries again for the things created, and the feed events."""
        calls = []
        entries: dict[tuple[str, str], None] = {}  # ordered and without repeats
        for path, body, ttl_seconds in things:
            now_ms = time.time_ns() // 1_000_000
            version = new_version(now_ms)
            ttl_ms = ttl_seconds * 1000
            payload = version.encode("ascii") + body
            args = self._put_args(NO_CONDITIONS, payload, ttl_ms, "put", path, now_ms + ttl_ms)
            calls.append((path, version, ttl_ms, payload, args))
            entries.update(dict.fromkeys(self._ancestry_keys(path)))
        pipe = self.client.pipeline(transaction=False)
        scripted: list[Any] = []
        for key, name in entries:
            self._change_entry(pipe, key, name, True, scripted)
        for path, *_, args in calls:
            # (the evalsha method is refused in cluster pipelines; the command routes by its key)
            pipe.execute_command("EVALSHA", self._put.sha, 1, self.thing_key(path), *args)
        replies = self._execute(pipe, scripted, raise_on_error=False)
        indexed = not any(isinstance(reply, Exception) for reply in replies[: len(entries)])
        written = []  # (call, created) of each thing stored
        failure: Exception | None = None
        again: dict[tuple[str, str], None] = {}
        for call, reply in zip(calls, replies[len(entries) :], strict=True):
            path, *_, args = call
            if isinstance(reply, NoScriptError):
                # A node that never saw the script: the plain call loads it and runs it.
                reply = self._put(keys=[self.thing_key(path)], args=args)
            elif isinstance(reply, Exception):
                # Raised once the things stored so far have their events, so that no write
                # goes unannounced to watchers.
                failure = failure or reply
                continue
            written.append((call, reply[0] == 1))
            if written[-1][1] or not indexed:
                again.update(dict.fromkeys(self._ancestry_keys(path)))
        pipe = self.client.pipeline(transaction=False)
        scripted = []
        for key, name in again:
            self._change_entry(pipe, key, name, True, scripted)
        for (path, _, _, _, args), _ in written:
            pipe.zadd(self.schedule_key(path), {path: args[-1]}, lt=True)  # see put()
        for (path, _, ttl_ms, payload, _), _ in written:
            self._log_event({"e": "put", "p": path, "d": payload, "t": str(ttl_ms)}, pipe)
        event_ids = self._execute(pipe, scripted)[len(again) + len(written) :]
        self._reindex(
            [
                (path, payload[VERSION_LENGTH:], version)
                for (path, version, _, payload, _), _ in written
            ]
        )
        if failure is not None:
            raise failure
        return [
            WriteResult(new, version, ttl_ms, event_id.decode())
            for ((_, version, ttl_ms, _, _), new), event_id in zip(written, event_ids, strict=True)
        ]

    def _with_index(
        self, entries: list[tuple[str, str]], keys: list[str], args: list[str | bytes | int]
    ) -> tuple[list[Any], bool]:
        """ZADD the entries and run put.lua in one pipelined batch: the script's reply, and
        whether every ZADD succeeded."""
        pipe = self.client.pipeline(transaction=False)
        scripted: list[Any] = []
        for key, name in entries:
            self._change_entry(pipe, key, name, True, scripted)
        # (the evalsha method is refused in cluster pipelines; the command routes by its key)
        pipe.execute_command("EVALSHA", self._put.sha, len(keys), *keys, *args)
        replies = self._execute(pipe, scripted, raise_on_error=False)
        if isinstance(replies[-1], NoScriptError):
            # A node that never saw the script (a replica promoted since, a new node): the
            # plain call loads it on every primary and runs it.
            return self._put(keys=keys, args=args), False
        if isinstance(replies[-1], Exception):
            raise replies[-1]
        return replies[-1], not any(isinstance(reply, Exception) for reply in replies)

    @unavailable_on_redis_errors
    def delete(self, path: str, conditions: Conditions = NO_CONDITIONS) -> str | None:
        reply = self._delete(
            keys=[self.thing_key(path)],
            args=[encode_condition(conditions.if_match), path, self.feed_retention],
        )
        if reply[0] == -1:
            raise ThingMissing(path)
        if reply[0] == 0:
            raise PreconditionFailed(reply[1].decode("ascii") if reply[1] else None)
        levels = self._ancestry_keys(path)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(*levels[0])
        pipe.zcard(levels[0][0])  # same key, same node: counted after the ZREM
        pipe.zrem(self.schedule_key(path), path)
        self._log_event({"e": "delete", "p": path}, pipe)
        event_id: bytes
        _, left, _, event_id = pipe.execute()
        # As on one Redis, a folder left empty leaves its parent, and so on up.
        removed = [path]
        folder = path[: path.rfind("/") + 1]
        for key, name in levels[1:]:
            if left:
                break
            removed.append(folder)
            pipe = self.client.pipeline(transaction=False)
            scripted: list[Any] = []
            self._change_entry(pipe, key, name, False, scripted)
            pipe.zcard(key)
            _, left = self._execute(pipe, scripted)
            folder = folder[: folder[:-1].rfind("/") + 1]
        # A write below may have come in between: put back whatever is there after all.
        self._restore_if_present(removed)
        self._unindex([path])
        return event_id.decode()

    def write_together(self, changes: Sequence[ThingWrite]) -> list[WriteResult | None]:
        """RedisStore.write_together thing by thing: the things live in different slots (most
        often on different nodes), which no MULTI or script spans. Every condition is checked
        first (one pipelined read): a conflict seen then writes nothing (PreconditionFailed).
        Then each change is its own put() or delete(), atomic and conditional for its thing, in
        order: a conflict that comes in between raises PartlyWritten (the changes before it
        stay written), and a failure or a crash part way leaves them written too. A reader may
        see some changes before the others (docs/firebase.md)."""
        paths = [change.path for change in changes]
        if len(set(paths)) != len(paths):
            raise ValueError("write_together: each thing may be changed once")
        self.check_sizes(changes)
        current = self.versions(paths)
        for change in changes:
            if not change.conditions.holds_for(current[change.path]):
                raise PreconditionFailed(current[change.path])
        results: list[WriteResult | None] = []
        for done, change in enumerate(changes):
            try:
                if change.body is None:
                    try:
                        self.delete(change.path, change.conditions)
                    except ThingMissing:
                        pass
                    results.append(None)
                    continue
                results.append(
                    self.put(
                        change.path,
                        change.body,
                        change.ttl_seconds,
                        change.conditions,
                        change.event,
                    )
                )
            except PreconditionFailed as conflict:
                if done == 0:
                    raise
                raise PartlyWritten(done, conflict.current) from conflict
        return results

    # -- folders ------------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def list_folder(
        self,
        folder: str,
        after: str | None,
        limit: int,
        values: bool = False,
        max_value_bytes: int = MAX_PAGE_VALUE_BYTES,
    ) -> Page:
        # The feed position first, so a watch from it misses nothing the page lacks.
        position = self.feed_position()
        for _ in range(2):
            page, gone, empty = self._read_page(
                folder, after, limit, values, max_value_bytes, position
            )
            if empty:
                self._remove_stale(folder, empty)
            if not gone:
                break
            # Indexed things that are gone: as on one Redis, taken for expiries nobody heard
            # (recorded, which repairs the index), and the page is read once more.
            for name in gone:
                self.record_expiry(folder + name)
        return page

    def _read_page(
        self,
        folder: str,
        after: str | None,
        limit: int,
        values: bool,
        max_value_bytes: int,
        position: str,
    ) -> tuple[Page, list[str], list[str]]:
        """The page, the things gone and the sub-folders empty. As list.lua on one Redis: the
        things' JSON only with `values`, and only while the page stays within
        `max_value_bytes` (a second batch, once the sizes are known); past it the page ends
        early."""
        start = b"(" + after.encode("utf-8", "surrogatepass") if after else b"-"
        key = self.folder_key(folder)
        names = byte_strings(
            self.client.zrange(key, start, b"+", bylex=True, offset=0, num=limit + 1)
        )
        more = len(names) > limit
        names = names[:limit]
        # One pipelined batch: each thing's version, lifetime and size, whether each sub-folder
        # has anything in it (an empty one may be left behind by an interrupted delete).
        pipe = self.client.pipeline(transaction=False)
        for raw in names:
            name = raw.decode()
            if name.endswith("/"):
                pipe.exists(self.folder_key(folder + name))
            else:
                pipe.getrange(self.thing_key(folder + name), 0, VERSION_LENGTH - 1)
                pipe.pttl(self.thing_key(folder + name))
                pipe.strlen(self.thing_key(folder + name))
        replies = iter(pipe.execute()) if names else iter(())
        listed: list[tuple[str, bool | tuple[bytes, int]]] = []  # (name, has things / state)
        used = 0
        for at, raw in enumerate(names):
            name = raw.decode()
            if name.endswith("/"):
                listed.append((name, bool(next(replies))))
                continue
            version, ttl_ms, size = next(replies), next(replies), next(replies)
            if values and used > 0 and used + size > max_value_bytes:
                names, more = names[:at], True  # the page ends here, with a cursor
                break
            used += size
            listed.append((name, (version, ttl_ms)))
        bodies: dict[str, bytes | None] = {}
        wanted = [name for name, state in listed if isinstance(state, tuple) and state[0]]
        if values and wanted:
            pipe = self.client.pipeline(transaction=False)
            for name in wanted:
                pipe.get(self.thing_key(folder + name))
            bodies = dict(zip(wanted, pipe.execute(), strict=True))
        page = Page([], [], [], [] if values else None, [], None, position)
        gone: list[str] = []
        empty: list[str] = []
        for name, state in listed:
            if not isinstance(state, tuple):
                (page.folders if state else empty).append(name)
                continue
            version, ttl_ms = state
            payload = bodies.get(name) if values else version
            if not payload or ttl_ms == -2:
                gone.append(name)
                continue
            thing = Thing.from_payload(payload, ttl_ms)
            page.names.append(name)
            page.ttls.append(thing.ttl)
            page.last_updated.append(thing.last_updated)
            if page.bodies is not None:
                page.bodies.append(thing.body)
        return replace(page, next_cursor=names[-1].decode() if more else None), gone, empty

    def _remove_stale(self, folder: str, names: list[str]) -> None:
        """Take out entries for things or folders that are gone, then put back any that came
        back meanwhile (a write may be between its index step and its thing step)."""
        self._change_entries(self.folder_key(folder), names, False)
        self._restore_if_present([folder + name for name in names])

    def _purge_batch(self, folder: str, names: list[str]) -> int:
        """As RedisStore's (its delete_tree walks the tree), each thing a key of its own slot:
        DEL them (one pipelined batch), then their index entries and feed events."""
        index = self.folder_key(folder)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.delete(self.thing_key(folder + name))
        gone = [n for n, d in zip(names, pipe.execute(), strict=True) if d]
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(index, *names)
        for name in gone:
            pipe.zrem(self.schedule_key(folder + name), folder + name)
            self._log_event({"e": "delete", "p": folder + name}, pipe)
        pipe.execute()
        self._restore_if_present([folder + name for name in names])
        self._unindex([folder + name for name in gone])
        return len(gone)

    def _prune_folder(self, folder: str) -> None:
        """Drop `folder` from its parent while it is empty, and so on up; then put back any
        that a write filled meanwhile."""
        removed = []
        for parent, name in ancestry(folder) if folder else ():
            pipe = self.client.pipeline(transaction=False)
            pipe.zcard(self.folder_key(folder))
            if pipe.execute()[0]:
                break
            self._change_entries(self.folder_key(parent), [name], False)
            removed.append(folder)
            folder = parent
        self._restore_if_present(removed)

    # -- change feed --------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def position_and_get(self, path: str) -> tuple[str, Thing | None]:
        # Two slots: the position first, then the thing (the order is what matters).
        return self.feed_position(), self.get(path)

    @unavailable_on_redis_errors
    def feed_since(self, after: str, count: int = 1000) -> Backlog:
        wanted = parse_event_id(after)
        if wanted is None:
            raise ValueError(f"not a feed position: {after!r}")
        self.check_feed_node()  # a failover since this process last looked leaves a marker
        # Scripts are not sent in cluster pipelines (a node that lacks one cannot be told):
        # the state, then the range, both on the feed's node.
        state = self._feed_state(keys=[self.feed_key])
        entries = self.client.xrange(self.feed_key, after, "+", count=count + 1)
        return backlog_from(wanted, after, state, entries, count)

    @unavailable_on_redis_errors
    def read_feed(self, after: str, block_ms: int, count: int = 1000) -> list[Event]:
        """As RedisStore.read_feed, sent to the feed's node directly: for XREAD (whose keys move in
        its arguments) redis-py would first ask its default node where the key is, so the
        reader would stop while that node, whatever it holds, fails over. A connection error
        here makes the client re-read the slot map, so the next call finds the new primary."""
        node = self.client.get_node_from_key(self.feed_key)
        reply = self.client.execute_command(
            "XREAD",
            "COUNT",
            count,
            "BLOCK",
            min(block_ms, FEED_BLOCK_MAX_MS),
            "STREAMS",
            self.feed_key,
            after,
            target_nodes=node,
        )
        return events_of_xread(reply, self.feed_key)

    @unavailable_on_redis_errors
    def check_feed_node(self) -> None:
        """Remember the replication id of the node holding the feed; when it has changed (its
        replica took over, or it restarted empty), append a `reset` marker to the feed.

        Replication is asynchronous, so the last events appended before a failover may be
        gone from the new primary even when the entries a watcher holds were kept: no gap shows
        in the stream itself. The marker makes every watcher whose position is before it get a
        reset (backlog_from), in every process. Several processes may each append one; a
        watcher crossing them still gets one reset. The first look only remembers."""
        replid = self._feed_node(keys=[self.feed_key])
        replid = replid.decode() if isinstance(replid, bytes) else str(replid)
        with self._feed_lock:
            seen, self._feed_replid = self._feed_replid, replid
        if seen is not None and seen != replid:
            self._log_event({"e": "reset", "p": ""})

    # -- expiry -------------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def record_expiry(self, path: str) -> str | None:
        """As Store.record_expiry in steps: the thing is gone, its index entry is the guard
        (only the process whose ZREM removes it logs the event), then folders left empty."""
        if self.client.exists(self.thing_key(path)):
            return None
        self._unindex([path])
        levels = self._ancestry_keys(path)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(*levels[0])
        pipe.zcard(levels[0][0])
        removed, left = pipe.execute()
        if not removed:
            return None
        event_id: bytes = self._log_event({"e": "expire", "p": path})
        parent = path[: path.rfind("/") + 1]
        if not left and parent:
            self._prune_folder(parent)
        self._restore_if_present([path])
        return event_id.decode()

    @unavailable_on_redis_errors
    def reap(self, now_ms: int | None = None, batch: int = REAP_BATCH) -> tuple[int, bool]:
        """As Store.reap, in steps (the schedule's shards, the things, their folder indexes and
        the feed are in different slots), each one pipelined batch:
        1. up to `batch` due entries of every shard;
        2. each due thing's PTTL at its own key (which deletes one whose time is up);
        3. per shard, settle.lua: the entries of things gone are taken out, those of things
           still alive get their real end. Taking an entry out is the claim: only the reaper
           whose script did it goes on with that thing;
        4. for the things claimed, record_expiry's steps: the folder index entry is the guard
           of the one `expire` event (a listing or a notification may have recorded it).
        An interruption after 3 leaves the index entry, which the next listing repairs."""
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000 - REAP_GRACE_MS
        shards = self._schedule_keys()
        pipe = self.client.pipeline(transaction=False)
        for key in shards:
            pipe.zrangebyscore(key, "-inf", now_ms, start=0, num=batch, withscores=True)
        replies = pipe.execute()
        due = [
            (key, member.decode("utf-8"), int(score))
            for key, entries in zip(shards, replies, strict=True)
            for member, score in entries
        ]
        if not due:
            return 0, False
        pipe = self.client.pipeline(transaction=False)
        for _, path, _ in due:
            pipe.pttl(self.thing_key(path))
        lifetimes = pipe.execute()
        per_shard: dict[str, list[tuple[str, int, int | str, int]]] = {}
        for (key, path, score), pttl in zip(due, lifetimes, strict=True):
            new_score = "" if pttl < 0 else now_ms + max(pttl, 1)
            per_shard.setdefault(key, []).append((path, score, new_score, pttl))
        claimed = []
        for key, entries in per_shard.items():
            args = [value for path, score, new, _ in entries for value in (path, score, new)]
            changed = self._settle(keys=[key], args=args)
            claimed += [
                path
                for (path, _, _, pttl), done in zip(entries, changed, strict=True)
                if done and pttl == -2
            ]
        more = any(len(entries) == batch for entries in replies)
        return self._record_expiries(claimed, now_ms), more

    @unavailable_on_redis_errors
    def record_expiries(self, paths: Sequence[str]) -> int:
        """As record_expiry for many things, each step one pipelined batch."""
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            pipe.exists(self.thing_key(path))
        gone = [path for path, there in zip(paths, pipe.execute(), strict=True) if not there]
        return self._record_expiries(gone, time.time_ns() // 1_000_000)

    def _record_expiries(self, paths: list[str], now_ms: int) -> int:
        """record_expiry's steps for many things known gone, each step one pipelined batch;
        returns how many `expire` events were logged."""
        if not paths:
            return 0
        self._unindex(paths)
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            key, name = next(iter(self._ancestry_keys(path)))
            pipe.zrem(key, name)
            pipe.zcard(key)  # same key, same node: counted after the ZREM
        replies = pipe.execute()
        removed = [path for i, path in enumerate(paths) if replies[2 * i]]
        emptied = {
            path[: path.rfind("/") + 1] for i, path in enumerate(paths) if replies[2 * i + 1] == 0
        }
        pipe = self.client.pipeline(transaction=False)
        for path in removed:
            self._log_event({"e": "expire", "p": path}, pipe)
            pipe.pttl(self.thing_key(path))
        replies = pipe.execute()
        for folder in emptied - {""}:
            self._prune_folder(folder)
        # Written again between its PTTL and now: put back its index entries and its schedule
        # entry (the claim took it out), as any repair does.
        lifetimes = zip(removed, replies[1::2], strict=True)
        back = [(path, pttl) for path, pttl in lifetimes if pttl >= 0]
        if back:
            pipe = self.client.pipeline(transaction=False)
            scripted: list[Any] = []
            for path, pttl in back:
                for key, name in self._ancestry_keys(path):
                    self._change_entry(pipe, key, name, True, scripted)
                pipe.zadd(self.schedule_key(path), {path: now_ms + max(pttl, 1)}, lt=True)
            self._execute(pipe, scripted)
        return len(removed)

    def enable_expiry_notifications(self) -> bool:
        """On every node, replicas included: a replica promoted by a failover must publish
        expiries as its primary did."""
        try:
            for node in self.client.get_nodes():
                connection = node.redis_connection
                if connection is None:
                    continue
                ensure_expiry_notifications(connection)
            return True
        except redis.RedisError:
            return False

    def expiry_channel(self) -> str:
        return "__keyevent@0__:expired"  # a cluster has only database 0

    def listen_expired(
        self,
        handle: Callable[[list[str]], None],
        stopped: Callable[[], bool],
        wake_channel: str,
    ) -> None:
        """Expiry events are published by the node where the key expired, to its own
        subscribers only: listen on every node (replicas too, so the one promoted by a failover
        is already listened to), and look for new or returning nodes now and then."""
        listeners: dict[str, PubSub] = {}
        refreshed = 0.0
        try:
            while not stopped():
                if time.monotonic() - refreshed > _NODES_REFRESH_S or not listeners:
                    refreshed = time.monotonic()
                    self._listen_to_new_nodes(listeners, wake_channel)
                    if not listeners:
                        time.sleep(0.5)
                        continue
                for name, pubsub in list(listeners.items()):
                    try:
                        paths = self.expired_paths(pubsub, _POLL_S, wake_channel)
                    except UNAVAILABLE_OR_OS_ERRORS:
                        listeners.pop(name)
                        _close_quietly(pubsub)
                        continue
                    if paths:
                        handle(paths)
        finally:
            for pubsub in listeners.values():
                _close_quietly(pubsub)

    def _listen_to_new_nodes(self, listeners: dict[str, PubSub], wake_channel: str) -> None:
        try:
            nodes = [
                (f"{host}:{port}", host, port)
                for host, port in _cluster_nodes(self.client)
                if f"{host}:{port}" not in listeners
            ]
        except UNAVAILABLE_OR_OS_ERRORS:
            return
        kwargs = self.client.get_default_node().redis_connection.get_connection_kwargs()
        for name, host, port in nodes:
            node_client = redis.Redis(
                host=host,
                port=port,
                username=kwargs.get("username"),
                password=kwargs.get("password"),
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=REPLY_TIMEOUT_S,  # SUBSCRIBE to a frozen node must not hang
            )
            pubsub = node_client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.expiry_channel(), wake_channel)
            except UNAVAILABLE_OR_OS_ERRORS:
                _close_quietly(pubsub)
                node_client.close()
                continue
            listeners[name] = pubsub

    # -- keys, rate limits, metrics ------------------------------------------------------------

    @unavailable_on_redis_errors
    def approximate_things(self) -> int:
        """Keys with an expiry on every primary (each counts its own slots' keys)."""
        info = self.client.info("keyspace", target_nodes=RedisCluster.PRIMARIES)
        per_node = info.values() if isinstance(info, dict) and "db0" not in info else [info]
        return sum(int(node.get("db0", {}).get("expires", 0)) for node in per_node)

    def limiter_storage(self) -> tuple[str, dict[str, Any]] | None:
        """The `limits` library speaks to a cluster through a redis+cluster:// URI; each
        counter is one key, so it lives in one slot."""
        url = getattr(self, "url", None)
        if url is None:
            return None
        parts = urlsplit(url)
        scheme = "rediss+cluster" if parts.scheme == "rediss" else "redis+cluster"
        return urlunsplit((scheme, parts.netloc, "", "", "")), limiter_options(self.prefix)

    # -- service ------------------------------------------------------------------------------

    def ping(self) -> bool:
        """Healthy when every primary answers: a slot without one cannot be served."""
        try:
            return bool(self.client.ping(target_nodes=RedisCluster.PRIMARIES))
        except UNAVAILABLE_OR_OS_ERRORS:
            return False

    def close(self) -> None:
        close_cluster(self.client)


def _cluster_nodes(client: RedisCluster) -> list[tuple[str, int]]:
    """Every node (host, port) the cluster knows now, asked of a node that answers."""
    nodes = client.cluster_nodes()
    return [
        (address.split(":")[0], int(address.split(":")[1].split("@")[0]))
        for address, info in nodes.items()
        if "fail" not in str(info.get("flags", "")) and info.get("connected", True)
    ]


def _close_quietly(pubsub: PubSub) -> None:
    try:
        pubsub.close()
    except (redis.RedisError, OSError):
        pass


def close_cluster(client: RedisCluster) -> None:
    """RedisCluster.close() leaves each node's connection pool open: close those too."""
    for node in client.get_nodes():
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.disconnect()
    client.close()


class ClusterQuerying(Querying):
    """Queries on a cluster: as on one Redis, but an index entry follows its thing (a step of
    its own), so a build and a repair set an entry only where no write got in first."""

    store: ClusterStore

    def repair(self, index: Index, folder: str, moved: list[tuple[str, bytes, bytes]]) -> None:
        """Set each entry found stale to the member of the thing as read, unless it changed
        since (a write's own step wins)."""
        zset = self.keeper.zset_key(index.id, folder)
        hash_key = self.keeper.hash_key(index.id, folder)
        self.store.set_index_entries(
            [(zset, hash_key, name, fresh, stale) for name, stale, fresh in moved]
        )

    def drop_index(self, index_id: str) -> Index | None:
        """As on one Redis, then once more after every process has seen the drop: a write by a
        process whose copy of the declarations was up to a second old may have set an entry
        of the dropped index meanwhile."""
        found = super().drop_index(index_id)
        if found is not None and self.keeper.refresh_s is not None:
            time.sleep(2 * self.keeper.refresh_s + 0.5)
            super().drop_index_keys(found)
        return found

    def _take_in(self, index: Index, folder: str, entries: list[Listed]) -> bool:
        """Add the entries of things read by a build where no write has set one since."""
        _, indexes = self.keeper.declared()
        if all(i.id != index.id for i in indexes):
            return False
        zset = self.keeper.zset_key(index.id, folder)
        hash_key = self.keeper.hash_key(index.id, folder)
        self.store.set_index_entries(
            [(zset, hash_key, entry.name, entry.member, b"-") for entry in entries]
        )
        return True
