"""The things of one Redis: get, put, put_many, delete, write_together and update (a
compare-and-set loop), and their versions. One Lua script per write (layout.py gives its keys)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from redis.exceptions import WatchError

from thingstash.core import retry
from thingstash.core.model import (
    NO_CONDITIONS,
    NO_GUARDS,
    OUTSIDE_TURN,
    VERSION_LENGTH,
    Conditions,
    GuardChanged,
    Guards,
    PreconditionFailed,
    Thing,
    ThingMissing,
    ThingWrite,
    TooMuchContention,
    WriteResult,
    check_size,
    new_version,
)
from thingstash.store import turn
from thingstash.store.base import StoreBase
from thingstash.store.common import (
    PUT_MANY_CHUNK,
    ancestry,
    encode_condition,
    unavailable_on_redis_errors,
)
from thingstash.store.folders import names_and_cursors, range_start
from thingstash.store.indexes import Section


class Things(StoreBase):
    """Store's things on one Redis (a mixin of RedisStore)."""

    guards_in_step = True  # write_together checks them under its WATCH

    def writing_turn(self) -> AbstractContextManager[turn.Held]:
        """The judged writes' turn, held for the block (turn.py)."""
        return turn.writing_turn(self.client, self.layout.turn_key)

    def many_steps(self, *folders: str) -> AbstractContextManager[None]:
        return nullcontext()  # not judged: no turn to hold

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
        change = ThingWrite(path, body, ttl_seconds, conditions, event)
        result = self._put_with(self._put, change, version)
        assert result is not None
        return result

    def _put_with(
        self, script: Any, change: ThingWrite, version: str | None = None
    ) -> WriteResult | None:
        """put.lua (or `script`: turn.lua before it) for `change`; None when the turn is held."""
        path, body = change.path, change.body
        assert body is not None
        now_ms = time.time_ns() // 1_000_000
        version = version or new_version(now_ms)
        ttl_ms = change.ttl_seconds * 1000
        keys, names = self._indexed_keys(path)
        args = self._put_args(
            change.conditions,
            version.encode("ascii") + body,
            ttl_ms,
            change.event,
            path,
            now_ms + ttl_ms,
        )

        def write(section: Section) -> Any:
            section.put(path, body, version)
            return script(keys=[*keys, *section.keys], args=[*args, *names, *section.args()])

        status, detail = self.index_keeper.run(write)
        if status == -1:
            return None
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
        (schedule,) = self.layout.schedule_keys()
        keys = [self.feed_key, schedule]
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
    def write_together(
        self, changes: Sequence[ThingWrite], guards: Guards = NO_GUARDS
    ) -> list[WriteResult | None]:
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
        it all starts again (with a short random pause; TooMuchContention after retry.ATTEMPTS).
        A Redis Cluster writes thing by thing instead (ClusterStore.write_together).

        `guards` (what a rules check read) are watched too and checked after the WATCH, before
        MULTI: a thing at another version, or a listing that reads otherwise, raises
        GuardChanged and writes nothing; a change to them after that makes EXEC do nothing.
        With `guards.outside_turn` the judged writes' turn is watched too, and the write waits
        while another holds it (turn.py).
        """
        paths = [change.path for change in changes]
        if len(set(paths)) != len(paths):
            raise ValueError("write_together: each thing may be changed once")
        if not changes and not guards:
            return []
        self.check_sizes(changes)
        if len(changes) == 1 and changes[0].body is not None and guards == OUTSIDE_TURN:
            return [self._put_outside_turn(changes[0])]
        keys = [self.thing_key(path) for path in paths]
        guarded = [self.thing_key(path) for path, _ in guards.versions]
        if guards.outside_turn:
            guarded.append(self.layout.turn_key)  # held (a value there): wait
        folders = [self.folder_key(listing.folder) for listing in guards.listings]
        for attempt in range(retry.ATTEMPTS):
            section = self.index_keeper.section()
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*keys, *guarded, *folders, self.index_keeper.generation_key)
                    *found, generation = self._versions(
                        keys=[*keys, *guarded, self.index_keeper.generation_key], client=pipe
                    )
                    if generation.decode() != section.generation:
                        self.index_keeper.reload()  # stale declarations: a new section
                        continue
                    found, seen = found[: len(keys)], found[len(keys) :]
                    if guards.outside_turn and seen.pop():
                        retry.pause(attempt)  # another judged write holds the turn
                        continue
                    self._check_guards(guards, seen, pipe)
                    for change, raw in zip(changes, found, strict=True):
                        version = raw.decode("ascii") if raw else None
                        if not change.conditions.holds_for(version):
                            raise PreconditionFailed(version)
                    pipe.multi()
                    results = [self._queue_change(change, section, pipe) for change in changes]
                    replies = pipe.execute()
                except WatchError:
                    # Another writer got in between: back off a little, randomly, as update().
                    retry.pause(attempt)
                    continue
            return [
                None if result is None else WriteResult(reply[0] == 1, *result, reply[1].decode())
                for result, reply in zip(results, replies, strict=True)
            ]
        raise TooMuchContention(paths[0])

    def _put_outside_turn(self, change: ThingWrite) -> WriteResult:
        """A judged thing's write that read nothing else (the guards only keep it outside the
        turn): put.lua after turn.lua, one round trip, again while another holds the turn."""
        for attempt in range(retry.ATTEMPTS):
            result = self._put_with(self._put_outside, change)
            if result is not None:
                return result
            retry.pause(attempt)
        raise TooMuchContention(change.path)

    def _check_guards(self, guards: Guards, seen: list[Any], client: Any) -> None:
        """GuardChanged unless the guarded things are at the versions read (`seen`, in the
        guards' order) and the guarded listings read as they did."""
        for (_, version), raw in zip(guards.versions, seen, strict=True):
            if (raw.decode("ascii") if raw else None) != version:
                raise GuardChanged()
        if not guards.listings:
            return
        for listing in guards.listings:
            reply = self._list_names(
                keys=[self.folder_key(listing.folder)],
                args=[listing.limit + 1, range_start(listing.after)],
                client=client,
            )
            names, cursor = names_and_cursors(reply, listing.limit)[0]
            if tuple(names) != listing.names or cursor != listing.cursor:
                raise GuardChanged()

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
        for attempt in range(retry.ATTEMPTS):
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
                retry.pause(attempt)
        raise TooMuchContention(path)

    @unavailable_on_redis_errors
    def versions(self, paths: Iterable[str]) -> dict[str, str | None]:
        """The current version of each thing (None when it does not exist), one batch: what
        watchers check a cluster's events against (live.hub.Ordering)."""
        paths = list(paths)
        if not paths:
            return {}
        if len(paths) == 1:  # one command: a pipeline's own work costs more than the call
            raw: Any = self.client.getrange(self.thing_key(paths[0]), 0, VERSION_LENGTH - 1)
            return {paths[0]: raw.decode("ascii") if raw else None}
        pipe = self.client.pipeline(transaction=False)
        for path in paths:
            pipe.getrange(self.thing_key(path), 0, VERSION_LENGTH - 1)
        return {
            path: raw.decode("ascii") if raw else None
            for path, raw in zip(paths, pipe.execute(), strict=True)
        }
