"""RedisStore: things on one Redis. The key layout and the Lua scripts (thingstash.store keeps the
only code that talks to Redis; ClusterStore splits the same keys by hash slot).

Layout (every key starts with the configurable namespace `ns`, default "ts"):

- `ns:t:{path}`: one string per thing, `version (16 chars) + JSON`, with the thing's lifetime as
  the key's own expiry. One key per thing keeps memory close to plain strings and makes every
  single-thing operation touch one Redis Cluster hash slot (the braces are the hash tag).
- `ns:f:{folder}`: a sorted set per folder, all scores 0, members the names directly inside it
  ("c" for a thing, "b/" for a sub-folder), so a listing page is a ZRANGE BYLEX, whatever the
  size of the store.
- `ns:f:{folder}:sub`: beside each folder's index, a sorted set (all scores 0) of its sub-folders'
  names only, so that its things alone can be counted and ranked by name in O(log n) (a query
  by `$name`, `count=true`: store/querying.py). Kept by the scripts that add or remove a folder
  index entry, only when a sub-folder's entry really comes or goes (scripts/folders.lua); a
  folder without sub-folders has none. `ns:subfolders:ready` says every folder's set is
  complete: a store written by an earlier version gets them from a one-time walk of its folder
  indexes (Querying.build_subfolder_sets).
- `ns:x`: the expiry schedule, a sorted set of every thing's path scored by when its lifetime
  ends (unix ms), kept by the same scripts that write and delete things. Each service process
  reaps what is due every half second (live.expiry), so an expired thing leaves listings
  and reaches watchers as an `expire` event within about a second, whatever the store's size:
  Redis's own expiry finds keys only at its pace (a few hundred a second among many long-lived
  ones). On a Redis Cluster it is split in shards (ClusterStore).
- `ns:feed`: the change feed, a stream of `put`, `patch`, `delete` and `expire` events, trimmed
  to about the retention asked for.
- `ns:k`: API keys, a hash from key id to its record (JSON: sha256 of the key, scope, prefix,
  created); `ns:k:used` a hash from key id to when it was last used (unix seconds). The key
  itself is never stored. A handful of keys per store, so one hash each is enough.
  `ns:k:closed`: set when a key is first created (or any is revoked) and never expires: a store
  that has had a key stays closed after its last key is revoked, until `thingstash keys
  reopen` deletes it.
- `ns:rl:...`: the rate limiter's counters (written by the `limits` library, through the
  storage URI and prefix that `limiter_storage()` gives it).

Writes are one Lua script each: the precondition check, the write, the folder indexes and the
feed entry happen atomically in one round trip. The version is made here, not in Redis: the
time in ms and random bits, so an ETag never repeats even when a thing is deleted and made again.

Updates that depend on the stored JSON (merge patches, increments) are merged in Python and
written with a compare-and-set on the version (optimistic concurrency, retried on conflict):
Lua's cjson would lose number precision, so user JSON is never parsed inside Redis.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import redis
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError, WatchError

from thingstash.core.answers import Answer
from thingstash.core.config import DEFAULT_MAX_BODY, MAX_PAGE_VALUE_BYTES
from thingstash.core.indexes import Index
from thingstash.core.model import (
    NO_CONDITIONS,
    VERSION_LENGTH,
    Backlog,
    Conditions,
    Event,
    KeyRecord,
    Page,
    PreconditionFailed,
    StorageUnavailable,
    Thing,
    ThingMissing,
    ThingWrite,
    TooMuchContention,
    WriteResult,
    check_size,
    new_version,
    parse_event_id,
    version_times_s,
)
from thingstash.core.queries import Query
from thingstash.store.common import (
    CAS_ATTEMPTS,
    EXPIRED_BATCH,
    FEED_BLOCK_MAX_MS,
    PUT_MANY_CHUNK,
    REAP_BATCH,
    REAP_GRACE_MS,
    SUBFOLDERS_SUFFIX,
    UNAVAILABLE_OR_OS_ERRORS,
    ancestry,
    backlog_from,
    byte_string,
    byte_strings,
    encode_condition,
    ensure_expiry_notifications,
    events_of_xread,
    limiter_options,
    load_script,
    unavailable_on_redis_errors,
)
from thingstash.store.indexes import IndexKeeper, Section, write_script
from thingstash.store.lean import LeanRedis
from thingstash.store.querying import Querying


def read_script(client: redis.Redis, script: str) -> Any:
    """A script that only reads: sent again after a dropped connection (store/lean.py)."""
    if isinstance(client, LeanRedis):
        return client.register_read_script(script)
    return client.register_script(script)


def _range_start(after: str | None) -> bytes:
    """Where names after `after` start, as ZRANGE BYLEX takes it."""
    return b"(" + after.encode("utf-8", "surrogatepass") if after else b"-"


def names_and_cursors(replies: list[Any], limit: int) -> list[tuple[list[str], str | None]]:
    """Store.list_names's answer from each folder's first `limit` + 1 names."""
    listed: list[tuple[list[str], str | None]] = []
    for raw in replies:
        names = [name.decode("utf-8", "surrogatepass") for name in byte_strings(raw)]
        listed.append((names[:limit], names[limit - 1] if len(names) > limit else None))
    return listed


class RedisStore:
    """Things in one Redis: model.Store on Redis. Methods raise model's errors, never HTTP ones."""

    # Each write appends its event in the same script: the feed has one thing's events in the
    # order of its writes. (Not so on a cluster: ClusterStore.)
    feed_in_order = True
    # Write scripts check the index declarations' generation (one Redis: the same server).
    checks_generation_in_scripts = True
    declarations_refresh_s: float | None = None

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "ts",
        feed_retention: int = 10_000,
        url: str | None = None,
        max_thing_bytes: int = DEFAULT_MAX_BODY,
    ):
        self.client = client
        self.url = url
        self.max_thing_bytes = max_thing_bytes
        self.prefix = prefix
        self.feed_retention = str(feed_retention)
        self.feed_key = f"{prefix}:feed"
        self._get = read_script(client, load_script("get.lua"))
        self._get_many = read_script(client, load_script("get_many.lua"))
        # The scripts that write or remove things keep the query indexes too (indexes.lua).
        self._put = write_script(client, "put.lua")
        self._put_many = write_script(client, "put_many.lua")
        self._delete = write_script(client, "delete.lua")
        self._position = read_script(
            client, load_script("feed_position.lua") + load_script("position.lua")
        )
        self._list = read_script(client, load_script("feed_position.lua") + load_script("list.lua"))
        self._list_names = read_script(client, load_script("list_names.lua"))
        self._versions = client.register_script(load_script("versions.lua"))
        self._feed_state = client.register_script(load_script("feed_state.lua"))
        self._expire = write_script(client, "expire.lua")
        self._purge = write_script(client, "purge.lua")
        self._prune = client.register_script(load_script("folders.lua") + load_script("prune.lua"))
        self._reap = write_script(client, "reap.lua")
        self.index_keeper = IndexKeeper(client, prefix, self.declarations_refresh_s)
        self.querying = Querying(self, self.index_keeper)

    # -- keys ---------------------------------------------------------------------------------

    def thing_key(self, path: str) -> str:
        return f"{self.prefix}:t:{{{path}}}"

    def thing_key_head(self, folder: str) -> str:
        """What the keys of the things in `folder` start with: thing_key(folder + name) is
        this, the name and a closing brace (list.lua makes them so)."""
        return f"{self.prefix}:t:{{{folder}"

    def folder_key(self, folder: str) -> str:
        return f"{self.prefix}:f:{{{folder}}}"

    def subfolders_key(self, folder: str) -> str:
        """The folder's sub-folder set: its index's key and a suffix, so the same hash slot
        (the hash tag lies within the index's key). scripts/folders.lua names it alike."""
        return self.folder_key(folder) + SUBFOLDERS_SUFFIX

    def schedule_key(self, path: str) -> str:
        """The expiry schedule (the shard holding `path`'s entry, on a cluster)."""
        return f"{self.prefix}:x"

    def _indexed_keys(self, path: str) -> tuple[list[str], list[str]]:
        """KEYS and the index names for a write script: thing, feed, expiry schedule, then the
        folder indexes."""
        keys = [self.thing_key(path), self.feed_key, self.schedule_key(path)]
        names = []
        for folder, name in ancestry(path):
            keys.append(self.folder_key(folder))
            names.append(name)
        return keys, names

    # -- things -------------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def get(self, path: str) -> Thing | None:
        found = self._get(keys=[self.thing_key(path)])
        if found is None:
            return None
        payload, ttl_ms = found
        return Thing.from_payload(payload, ttl_ms)

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
        """Store `body` (a serialised JSON object) at `path`, replacing any thing there whole.
        Raises TooLarge past max_thing_bytes, as every write does."""
        check_size(path, body, self.max_thing_bytes)
        now_ms = time.time_ns() // 1_000_000
        version = version or new_version(now_ms)
        ttl_ms = ttl_seconds * 1000
        keys, names = self._indexed_keys(path)
        args = self._put_args(
            conditions, version.encode("ascii") + body, ttl_ms, event, path, now_ms + ttl_ms
        )

        def write(section: Section) -> Any:
            section.put(path, body, version)
            return self._put(keys=[*keys, *section.keys], args=[*args, *names, *section.args()])

        status, detail = self.index_keeper.run(write)
        if status == 0:
            raise PreconditionFailed(detail.decode("ascii") if detail else None)
        return WriteResult(status == 1, version, ttl_ms, detail.decode() if detail else None)

    @unavailable_on_redis_errors
    def put_many(
        self,
        things: Sequence[tuple[str, bytes, int]],
        chunk: int = PUT_MANY_CHUNK,
        max_thing_bytes: int | None = None,
    ) -> list[WriteResult]:
        """Store many things, each `(path, body, ttl seconds)` exactly as put() stores one
        (version, lifetime, folder indexes, a `put` event), in order.

        A chunk of `chunk` things is one put_many.lua call (one round trip, atomic); the whole
        is not: a failure part way leaves the earlier chunks written (writing them again is
        harmless). On a Redis Cluster, ClusterStore writes a chunk in put()'s steps.

        Every thing is checked against `max_thing_bytes` (the store's own limit by default)
        before any is written: one past it raises TooLarge and nothing is written."""
        limit = self.max_thing_bytes if max_thing_bytes is None else max_thing_bytes
        for path, body, _ in things:
            check_size(path, body, limit)
        results: list[WriteResult] = []
        for start in range(0, len(things), chunk):
            results.extend(self._put_chunk(things[start : start + chunk]))
        return results

    def _put_chunk(self, things: Sequence[tuple[str, bytes, int]]) -> list[WriteResult]:
        """One put_many.lua call: the things, then each folder index once with all its new
        names (siblings share their ancestors, so most of put.lua's ZADDs would repeat)."""
        keys = [self.feed_key, self.schedule_key("")]
        args: list[str | bytes | int] = [len(things), self.feed_retention]
        written = []
        folders: dict[str, dict[str, None]] = {}  # index -> names, ordered and without repeats
        indexed: list[tuple[str, bytes, str]] = []  # path, body, version: for the query indexes
        for path, body, ttl_seconds in things:
            now_ms = time.time_ns() // 1_000_000
            version = new_version(now_ms)
            indexed.append((path, body, version))
            ttl_ms = ttl_seconds * 1000
            keys.append(self.thing_key(path))
            args += (version.encode("ascii") + body, ttl_ms, path, now_ms + ttl_ms)
            written.append((version, ttl_ms))
            for folder, name in ancestry(path):
                names = folders.setdefault(folder, {})
                if name in names:
                    break  # and so is everything above it
                names[name] = None
        for folder, names in folders.items():
            keys.append(self.folder_key(folder))
            args += (len(names), *names)

        def write(section: Section) -> Any:
            for path, body, version in indexed:
                section.put(path, body, version)
            return self._put_many(keys=[*keys, *section.keys], args=[*args, *section.args()])

        reply = self.index_keeper.run(write)
        return [
            WriteResult(reply[2 * i] == 1, version, ttl_ms, reply[2 * i + 1].decode())
            for i, (version, ttl_ms) in enumerate(written)
        ]

    def _put_args(
        self,
        conditions: Conditions,
        payload: bytes,
        ttl_ms: int,
        event: str,
        path: str,
        expires_at_ms: int,
    ) -> list[str | bytes | int]:
        """put.lua's ARGV before the index names (see its header)."""
        return [
            encode_condition(conditions.if_match),
            encode_condition(conditions.if_none_match),
            payload,
            ttl_ms,
            event,
            path,
            self.feed_retention,
            expires_at_ms,
        ]

    @unavailable_on_redis_errors
    def delete(self, path: str, conditions: Conditions = NO_CONDITIONS) -> str | None:
        """Delete the thing at `path`; return the feed event id. Raises ThingMissing."""
        keys, names = self._indexed_keys(path)
        args = [encode_condition(conditions.if_match), path, self.feed_retention, *names]

        def remove(section: Section) -> Any:
            section.remove(path, 1)
            return self._delete(keys=[*keys, *section.keys], args=[*args, *section.args()])

        reply = self.index_keeper.run(remove)
        if reply[0] == -1:
            raise ThingMissing(path)
        if reply[0] == 0:
            raise PreconditionFailed(reply[1].decode("ascii") if reply[1] else None)
        return reply[1].decode() if reply[1] else None

    @unavailable_on_redis_errors
    def write_together(self, changes: Sequence[ThingWrite]) -> list[WriteResult | None]:
        """Write and delete several things as one: all or nothing, and no reader sees some of
        the changes without the others (Firebase's multi-path update, docs/firebase.md).

        Each change has exactly the effects of its own put() or delete(): folder indexes, the
        expiry schedule, one feed event per thing (in the order given, consecutive), query
        indexes. Returns, per change, its WriteResult, or None for a delete.

        Raises TooLarge when a change's body is over max_thing_bytes, before anything is
        written. Raises PreconditionFailed (with the thing's current version) when a change's
        `conditions` do not hold, before anything is written: the caller reads again, computes
        its changes again and retries. ValueError when a path comes twice.

        One Redis: WATCH the things' keys (and the index declarations' generation), read their
        versions and check the conditions, then MULTI, the same put.lua/delete.lua calls as
        single writes, EXEC; a write to any of those keys in between makes EXEC do nothing, and
        it all starts again (with a short random pause; TooMuchContention after CAS_ATTEMPTS).
        A Redis Cluster writes thing by thing instead (ClusterStore.write_together).
        """
        paths = [change.path for change in changes]
        if len(set(paths)) != len(paths):
            raise ValueError("write_together: each thing may be changed once")
        if not changes:
            return []
        self.check_sizes(changes)
        keys = [self.thing_key(path) for path in paths]
        for attempt in range(CAS_ATTEMPTS):
            section = self.index_keeper.section()
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*keys, self.index_keeper.generation_key)
                    *found, generation = self._versions(
                        keys=[*keys, self.index_keeper.generation_key], client=pipe
                    )
                    if generation.decode() != section.generation:
                        self.index_keeper.reload()  # stale declarations: a new section
                        continue
                    for change, raw in zip(changes, found, strict=True):
                        version = raw.decode("ascii") if raw else None
                        if not change.conditions.holds_for(version):
                            raise PreconditionFailed(version)
                    pipe.multi()
                    results = [self._queue_change(change, section, pipe) for change in changes]
                    replies = pipe.execute()
                except WatchError:
                    # Another writer got in between: back off a little, randomly, as update().
                    time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
                    continue
            return [
                None if result is None else WriteResult(reply[0] == 1, *result, reply[1].decode())
                for result, reply in zip(results, replies, strict=True)
            ]
        raise TooMuchContention(paths[0])

    def check_sizes(self, changes: Sequence[ThingWrite]) -> None:
        """TooLarge for the first change whose body is over max_thing_bytes."""
        for change in changes:
            if change.body is not None:
                check_size(change.path, change.body, self.max_thing_bytes)

    def _queue_change(
        self, change: ThingWrite, section: Section, pipe: Any
    ) -> tuple[str, int] | None:
        """Queue a change's put.lua or delete.lua call on a MULTI pipeline (conditions already
        checked under WATCH); (version, ttl ms) of a write, None for a delete."""
        section.clear()
        keys, names = self._indexed_keys(change.path)
        if change.body is None:
            section.remove(change.path, 1)
            unconditional = ["", change.path, self.feed_retention, *names]
            self._delete(
                keys=[*keys, *section.keys], args=[*unconditional, *section.args()], client=pipe
            )
            return None
        now_ms = time.time_ns() // 1_000_000
        version = new_version(now_ms)
        ttl_ms = change.ttl_seconds * 1000
        payload = version.encode("ascii") + change.body
        args = self._put_args(
            NO_CONDITIONS, payload, ttl_ms, change.event, change.path, now_ms + ttl_ms
        )
        section.put(change.path, change.body, version)
        self._put(keys=[*keys, *section.keys], args=[*args, *names, *section.args()], client=pipe)
        return version, ttl_ms

    def update(
        self,
        path: str,
        change: Callable[[Thing | None], tuple[bytes, int]],
        conditions: Conditions = NO_CONDITIONS,
        event: str = "patch",
    ) -> tuple[WriteResult, bytes]:
        """Read-modify-write: `change(current)` returns (new body, ttl seconds) and may raise.

        The write succeeds only if the thing still has the version that was read (or is still
        absent); otherwise it is read again and `change` runs again. The caller's own
        preconditions are checked against each version read, so they hold for the one written.
        """
        for attempt in range(CAS_ATTEMPTS):
            current = self.get(path)
            version = current.version if current else None
            if not conditions.holds_for(version):
                raise PreconditionFailed(version)
            body, ttl_seconds = change(current)
            expected = Conditions(if_match=(version,)) if version else Conditions(if_none_match="*")
            try:
                return self.put(path, body, ttl_seconds, expected, event), body
            except PreconditionFailed:
                # Another writer got in between: back off a little, randomly, to spread retries.
                time.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))
        raise TooMuchContention(path)

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
        """Up to `limit` entries directly in `folder`, by name, after the name `after`.

        Each thing's JSON is read only with `values` (otherwise its `body` is empty), and then
        only while the page's JSON stays within `max_value_bytes`: past it the page ends early,
        with a cursor, so one page of big things cannot take a worker's (or Redis's) memory.
        The first thing is always read, whatever its size.

        One round trip whatever the store's size (list.lua): the feed position, a ZRANGE BYLEX
        of the folder's index and the things named, in one step. An indexed thing that is gone
        has expired without its notification being handled yet (the server was down, say): it
        is left out, recorded as expired (which repairs the index), and the page is read once
        more to fill its place.
        """
        keys = [self.folder_key(folder), self.feed_key]
        args: list[bytes | str | int] = [
            b"(" + after.encode("utf-8") if after else b"-",
            limit,
            b"values" if values else b"versions",
            max_value_bytes,
            self.thing_key_head(folder),
            self.folder_key(folder)[:-1],
        ]
        position = None
        for _ in range(2):
            page_position, last, folders, things, gone, empty = self._list(keys=keys, args=args)
            position = position or page_position.decode()
            for name in empty:  # repaired: dropped from this folder (and any emptied above)
                self._prune_folder(folder + name.decode())
            if not gone:
                break
            for name in gone:
                self.record_expiry(folder + name.decode())
        step = 4 if values else 3
        return Page(
            [name.decode() for name in things[0::step]],
            things[2::step],  # Thing.ttl, seconds left (list.lua)
            version_times_s(things[1::step]),
            things[3::step] if values else None,
            [name.decode() for name in folders],
            last.decode() if last else None,
            position or "0-0",
        )

    @unavailable_on_redis_errors
    def list_names(
        self, starts: Sequence[tuple[str, str | None]], limit: int
    ) -> list[tuple[list[str], str | None]]:
        """For each (folder, after), in order: up to `limit` names directly in the folder after
        the name `after` (None: from the first), in name order (a sub-folder's ends in "/"), and
        the last of them when more follow (else None). One pipelined batch for all the folders:
        one round trip however many folders (list_names.lua; a pipeline on a cluster)."""
        if not starts:
            return []
        replies = self._list_names(
            keys=[self.folder_key(folder) for folder, _ in starts],
            args=[limit + 1, *(_range_start(after) for _, after in starts)],
        )
        return names_and_cursors(replies, limit)

    @unavailable_on_redis_errors
    def delete_tree(self, folder: str, batch: int = 500) -> int:
        """Delete every thing below `folder` (at any depth); return how many were deleted.

        Walks the folder indexes depth first, a bounded batch of names per script call, never
        the keyspace. Each thing deleted gets a `delete` event; folders left empty are dropped
        from their parents by the batch that empties them, in the same atomic step, so a delete
        cut short (a process killed) leaves every listing right. Things written meanwhile may
        survive: there is no global lock.
        """
        deleted = 0
        stack: list[tuple[str, bytes]] = [(folder, b"-")]
        while stack:
            current, start = stack.pop()
            names = byte_strings(
                self.client.zrange(
                    self.folder_key(current), start, b"+", bylex=True, offset=0, num=batch
                )
            )
            if not names:
                self._prune_folder(current)
                continue
            things = [n.decode() for n in names if not n.endswith(b"/")]
            if things:
                deleted += self._purge_batch(current, things)
            # Come back for the rest of this folder after its sub-folders in this batch.
            stack.append((current, b"(" + names[-1]))
            stack.extend((current + n.decode(), b"-") for n in reversed(names) if n.endswith(b"/"))
        return deleted

    def _purge_batch(self, folder: str, things: list[str]) -> int:
        """One purge.lua call: a batch of things of one folder, out of every index too."""
        keys = [
            self.folder_key(folder),
            self.feed_key,
            self.schedule_key(folder),
            *(self.thing_key(folder + name) for name in things),
        ]
        # The folders above, for the script to drop the folder from them if the batch empties
        # it: in the same step, so no interruption can leave an emptied folder listed.
        above = list(ancestry(folder))
        keys += (self.folder_key(parent) for parent, _ in above)
        args = [folder, self.feed_retention, len(things), *things, *(name for _, name in above)]

        def remove(section: Section) -> int:
            for position, name in enumerate(things, start=4):
                section.remove(folder + name, position)
            return int(self._purge(keys=[*keys, *section.keys], args=[*args, *section.args()]))

        return self.index_keeper.run(remove)

    def _prune_folder(self, folder: str) -> None:
        if not folder:
            return
        keys = [self.folder_key(folder)]
        names = []
        for parent, name in ancestry(folder):
            keys.append(self.folder_key(parent))
            names.append(name)
        self._prune(keys=keys, args=names)

    # -- change feed --------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def feed_position(self) -> str:
        """The id of the last change ever logged ("0-0" before the first)."""
        position: bytes = self._position(keys=[self.feed_key])
        return position.decode()

    @unavailable_on_redis_errors
    def position_and_get(self, path: str) -> tuple[str, Thing | None]:
        """The feed position, then the thing: a watch that starts from this state and this
        position sees every later change (and perhaps one it already has, never a gap)."""
        pipe = self.client.pipeline(transaction=False)
        self._position(keys=[self.feed_key], client=pipe)
        self._get(keys=[self.thing_key(path)], client=pipe)
        position, found = pipe.execute()
        return position.decode(), Thing.from_payload(*found) if found is not None else None

    @unavailable_on_redis_errors
    def feed_since(self, after: str, count: int = 1000) -> Backlog:
        """Up to `count` events after the id `after`, or a reset when the feed no longer holds
        all of them (trimmed past the retention), `after` was never issued (a later id, or a
        feed that has since been emptied), or the feed may have lost events since (see
        backlog_from)."""
        wanted = parse_event_id(after)
        if wanted is None:
            raise ValueError(f"not a feed position: {after!r}")
        pipe = self.client.pipeline(transaction=False)
        self._feed_state(keys=[self.feed_key], client=pipe)
        # From `after` itself: that it is still there is part of the answer.
        pipe.xrange(self.feed_key, after, "+", count=count + 1)
        state, entries = pipe.execute()
        return backlog_from(wanted, after, state, entries, count)

    def check_feed_node(self) -> None:
        """On a cluster: notice a failover of the feed's node (see ClusterStore); a single
        Redis has nothing to notice."""

    @unavailable_on_redis_errors
    def read_feed(self, after: str, block_ms: int, count: int = 1000) -> list[Event]:
        """Events after `after`, waiting up to `block_ms` for the first one (XREAD BLOCK)."""
        block_ms = min(block_ms, FEED_BLOCK_MAX_MS)
        reply = self.client.xread({self.feed_key: after}, count=count, block=block_ms)
        return events_of_xread(reply, self.feed_key)

    @unavailable_on_redis_errors
    def versions(self, paths: Iterable[str]) -> dict[str, str | None]:
        """The current version of each thing (None when it does not exist), one batch: what
        watchers check a cluster's events against (live.hub.Ordering)."""
        paths = list(paths)
        if not paths:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            pipe.getrange(self.thing_key(path), 0, VERSION_LENGTH - 1)
        return {
            path: raw.decode("ascii") if raw else None
            for path, raw in zip(paths, pipe.execute(), strict=True)
        }

    # -- expiry -------------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def record_expiry(self, path: str) -> str | None:
        """Log an `expire` event for a thing gone by expiry and drop it from the indexes; None
        when there is nothing to do (already recorded by another process, or written again)."""
        keys, names = self._indexed_keys(path)

        def record(section: Section) -> Any:
            section.remove(path, 1)
            return self._expire(
                keys=[*keys, *section.keys],
                args=[path, self.feed_retention, *names, *section.args()],
            )

        reply = self.index_keeper.run(record)
        return reply.decode() if reply else None

    @unavailable_on_redis_errors
    def record_expiries(self, paths: Sequence[str]) -> int:
        """record_expiry for many things, one pipelined batch; how many events were logged."""

        def record(section: Section) -> int:
            pipe = self.client.pipeline(transaction=False)
            for path in paths:
                keys, names = self._indexed_keys(path)
                section.remove(path, 1)
                self._expire(
                    keys=[*keys, *section.keys],
                    args=[path, self.feed_retention, *names, *section.args()],
                    client=pipe,
                )
                section.clear()
            return sum(1 for reply in pipe.execute() if reply)

        return self.index_keeper.run(record)

    @unavailable_on_redis_errors
    def reap(self, now_ms: int | None = None, batch: int = REAP_BATCH) -> tuple[int, bool]:
        """Reap up to `batch` things whose lifetime ended by `now_ms` (by default now, less
        REAP_GRACE_MS), in one atomic script: each gone from Redis (its memory freed), from its
        folder indexes (empty folders pruned) and logged as an `expire` event, once however many
        processes reap at the same time. A thing written again since it was due is left alone.
        Returns (expire events logged, whether more may be due)."""
        if now_ms is None:
            now_ms = time.time_ns() // 1_000_000 - REAP_GRACE_MS
        schedule = self.schedule_key("")
        due = byte_strings(self.client.zrangebyscore(schedule, "-inf", now_ms, start=0, num=batch))
        if not due:
            return 0, False
        keys = [schedule, self.feed_key]
        args: list[str | bytes | int] = [now_ms, self.feed_retention]
        removed: list[tuple[str, int]] = []  # path, position of its key in KEYS (1-based)
        for raw in due:
            path = raw.decode("utf-8")
            keys.append(self.thing_key(path))
            removed.append((path, len(keys)))
            args += (path, 0)
            depth_at = len(args) - 1
            for folder, name in ancestry(path):
                keys.append(self.folder_key(folder))
                args.append(name)
            args[depth_at] = len(args) - depth_at - 1

        def reap(section: Section) -> int:
            for path, position in removed:
                section.remove(path, position)
            return int(self._reap(keys=[*keys, *section.keys], args=[*args, *section.args()]))

        return self.index_keeper.run(reap), len(due) == batch

    def enable_expiry_notifications(self) -> bool:
        """Make sure Redis publishes expiry events ("Ex"); turn them on when allowed.
        False when they are off and cannot be turned on (CONFIG refused, e.g. on a managed
        Redis): expiries then reach listings lazily, and watchers only through them."""
        try:
            ensure_expiry_notifications(self.client)
            return True
        except redis.RedisError:
            return False

    def expiry_channel(self) -> str:
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return f"__keyevent@{db}__:expired"

    def path_of_thing_key(self, key: bytes) -> str | None:
        """The path of a thing key of this namespace, None for any other key."""
        head = f"{self.prefix}:t:{{".encode()
        if not key.startswith(head) or not key.endswith(b"}"):
            return None
        try:
            return key[len(head) : -1].decode("utf-8")
        except UnicodeDecodeError:
            return None

    def expired_paths(
        self, pubsub: redis.client.PubSub, wait: float, wake_channel: str
    ) -> list[str]:
        """The paths of the things expired in the notifications waiting on `pubsub` (up to
        EXPIRED_BATCH, waiting up to `wait` for the first): they come in bursts, and each
        process hears every one (the reaper's too), so they are handled a batch at a time."""
        paths: list[str] = []
        message = pubsub.get_message(timeout=wait)
        while message is not None and len(paths) < EXPIRED_BATCH:
            if message["channel"] != wake_channel.encode():
                path = self.path_of_thing_key(message["data"])
                if path is not None:
                    paths.append(path)
            message = pubsub.get_message(timeout=0)
        return paths

    def listen_expired(
        self,
        handle: Callable[[list[str]], None],
        stopped: Callable[[], bool],
        wake_channel: str,
    ) -> None:
        """Call `handle(paths)` with the things of this namespace that expire, a batch at a
        time, until `stopped()`; a message on `wake_channel` makes it look at `stopped()` at
        once. Reconnects by itself when Redis goes away."""
        while not stopped():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.expiry_channel(), wake_channel)
                while not stopped():
                    paths = self.expired_paths(pubsub, 5.0, wake_channel)
                    if paths:
                        handle(paths)
            except (ConnectionError, TimeoutError, BusyLoadingError, OSError, StorageUnavailable):
                if not stopped():
                    time.sleep(0.5)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass

    def wake(self, channel: str) -> None:
        try:
            self.client.publish(channel, b"")
        except redis.RedisError:
            pass

    # -- API keys -----------------------------------------------------------------------------

    @property
    def keys_key(self) -> str:
        return f"{self.prefix}:k"

    @property
    def keys_used_key(self) -> str:
        return f"{self.prefix}:k:used"

    @property
    def closed_key(self) -> str:
        return f"{self.prefix}:k:closed"

    @unavailable_on_redis_errors
    def key_count(self) -> int:
        return int(self.client.hlen(self.keys_key))

    @unavailable_on_redis_errors
    def is_closed(self) -> bool:
        """Whether requests need a key: a key exists, or one did (the marker). One EXISTS:
        stores from before the marker count as closed by their keys."""
        return int(self.client.exists(self.keys_key, self.closed_key)) > 0

    @unavailable_on_redis_errors
    def reopen(self) -> bool:
        """Open a store that has no key left (the operator's deliberate act); False while
        keys exist."""
        if self.key_count() > 0:
            return False
        self.client.delete(self.closed_key)
        return True

    @unavailable_on_redis_errors
    def add_key(self, record: KeyRecord) -> bool:
        """Store a new key's record; False if its id is taken (the caller draws another).
        The marker is set first: a store is never seen with a key and without it."""
        self.client.set(self.closed_key, b"1")
        return bool(self.client.hsetnx(self.keys_key, record.id, record.to_json()))

    @unavailable_on_redis_errors
    def get_key(self, key_id: str) -> KeyRecord | None:
        raw = byte_string(self.client.hget(self.keys_key, key_id))
        return KeyRecord.from_json(key_id, raw) if raw is not None else None

    @unavailable_on_redis_errors
    def list_keys(self) -> list[KeyRecord]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys_key)
        pipe.hgetall(self.keys_used_key)
        records, used = pipe.execute()
        return sorted(
            (KeyRecord.from_json(k.decode(), v, used.get(k)) for k, v in records.items()),
            key=lambda record: (record.created, record.id),
        )

    @unavailable_on_redis_errors
    def revoke_key(self, key_id: str) -> bool:
        if not self.client.hexists(self.keys_key, key_id):
            return False
        # Keys made before the marker existed: set it before the last key can go.
        self.client.set(self.closed_key, b"1")
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.keys_key, key_id)
        pipe.hdel(self.keys_used_key, key_id)
        removed, _ = pipe.execute()
        return bool(removed)

    @unavailable_on_redis_errors
    def touch_key(self, key_id: str, when: int) -> None:
        self.client.hset(self.keys_used_key, key_id, when)

    # -- queries ------------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def query(
        self,
        folder: str,
        query: Query,
        costly: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> Answer:
        """The answer to a query of the things directly in `folder` (thingstash.core.queries).
        `costly` is entered around the work of one computed without an index (reading up to
        queries.MAX_UNINDEXED_BYTES of JSON): the caller's gate for such work."""
        return self.querying.answer(folder, query, costly)

    @unavailable_on_redis_errors
    def indexes(self) -> list[Index]:
        return list(self.index_keeper.reload()[1])

    @unavailable_on_redis_errors
    def create_index(self, folder: str, field: str) -> tuple[Index, bool]:
        """Declare an index (folder pattern, field); each process's builder takes in what is
        stored. (The index, False) when the same one is declared already."""
        return self.index_keeper.create(folder, field)

    @unavailable_on_redis_errors
    def drop_index(self, index_id: str) -> Index | None:
        return self.querying.drop_index(index_id)

    @unavailable_on_redis_errors
    def build_indexes(self, stop: threading.Event | None = None) -> int:
        """Build the indexes still building (bounded steps); how many became ready."""
        return self.querying.build_indexes(stop)

    @unavailable_on_redis_errors
    def read_many(self, paths: Sequence[str], values: bool, budget: int) -> list[Thing | None]:
        """The things at `paths` in one script call (None for one that is gone), whole with
        `values` (else their version only), read in order while their JSON stays within
        `budget` bytes (the first whatever its size): shorter than `paths` when it ran out."""
        if not paths:
            return []
        reply = self._get_many(
            keys=[self.thing_key(path) for path in paths],
            args=[b"values" if values else b"versions", budget],
        )
        return [
            Thing.from_payload(reply[2 * i], reply[2 * i + 1]) if reply[2 * i] else None
            for i in range(len(reply) // 2)
        ]

    def folder_names(self, folder: str, after: bytes, count: int) -> list[bytes]:
        """Up to `count` names in a folder's index after `after` (ZRANGE BYLEX syntax)."""
        index = self.folder_key(folder)
        return byte_strings(self.client.zrange(index, after, b"+", bylex=True, offset=0, num=count))

    # -- service ------------------------------------------------------------------------------

    @unavailable_on_redis_errors
    def approximate_things(self) -> int:
        """Keys with an expiry in this database (INFO keyspace): every thing has one, and the
        indexes, feed and API keys have none, so this counts things without a scan. Rate-limit
        counters and other users of a shared database add to it."""
        info = self.client.info("keyspace")
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        return int(info.get(f"db{db}", {}).get("expires", 0))

    def limiter_storage(self) -> tuple[str, dict[str, Any]] | None:
        """The storage URI and options for the `limits` library (under flask-limiter), which
        opens its own connection: the same server as ours, its keys under `ns:rl`. None when
        this store was not opened from a URL."""
        if self.url is None:
            return None
        uri = self.url
        if uri.startswith("unix://"):
            uri = "redis+unix://" + uri[len("unix://") :]
        return uri, limiter_options(self.prefix)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except UNAVAILABLE_OR_OS_ERRORS:
            return False

    def close(self) -> None:
        self.client.close()
