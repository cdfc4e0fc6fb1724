"""A cluster's things: put, put_many, delete and write_together in steps (the thing's own key
atomically, then its folder index entries, schedule entry and feed event), in the order
cluster.py's docstring explains."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from thingstash.core.model import (
    NO_CONDITIONS,
    NO_GUARDS,
    VERSION_LENGTH,
    Conditions,
    GuardChanged,
    Guards,
    PartlyWritten,
    PreconditionFailed,
    ThingMissing,
    ThingWrite,
    WriteResult,
    check_size,
    new_version,
)
from thingstash.store.cluster_base import Batch, ClusterBase
from thingstash.store.common import (
    encode_condition,
    unavailable_on_redis_errors,
)
from thingstash.store.things import Things


class ClusterThings(ClusterBase, Things):
    """Store's things on a cluster (a mixin of ClusterStore)."""

    # write_together checks guards before its first write: a judged write holds the turn.
    guards_in_step = False

    if TYPE_CHECKING:  # ClusterFolders' (the guards of write_together list folders)

        def list_names(
            self, starts: Sequence[tuple[str, str | None]], limit: int
        ) -> list[tuple[list[str], str | None]]: ...

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
        entries = self.layout.ancestry_keys(path)
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
            entries.update(dict.fromkeys(self.layout.ancestry_keys(path)))
        batch = Batch(self.client)
        for key, name in entries:
            self._change_entry(batch, key, name, True)
        for path, *_, args in calls:
            batch.script(self._put, [self.thing_key(path)], args)
        replies = batch.execute(raise_on_error=False)
        indexed = not any(isinstance(reply, Exception) for reply in replies[: len(entries)])
        written = []  # (call, created) of each thing stored
        failure: Exception | None = None
        again: dict[tuple[str, str], None] = {}
        for call, reply in zip(calls, replies[len(entries) :], strict=True):
            path, *_, args = call
            if isinstance(reply, Exception):
                # Raised once the things stored so far have their events, so that no write
                # goes unannounced to watchers.
                failure = failure or reply
                continue
            written.append((call, reply[0] == 1))
            if written[-1][1] or not indexed:
                again.update(dict.fromkeys(self.layout.ancestry_keys(path)))
        batch = Batch(self.client)
        pipe = batch.pipe
        for key, name in again:
            self._change_entry(batch, key, name, True)
        for (path, _, _, _, args), _ in written:
            pipe.zadd(self.schedule_key(path), {path: args[-1]}, lt=True)  # see put()
        for (path, _, ttl_ms, payload, _), _ in written:
            self._log_event({"e": "put", "p": path, "d": payload, "t": str(ttl_ms)}, pipe)
        event_ids = batch.execute()[len(again) + len(written) :]
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
        batch = Batch(self.client)
        for key, name in entries:
            self._change_entry(batch, key, name, True)
        batch.script(self._put, keys, args)
        replies = batch.execute(raise_on_error=False)
        if len(replies) - 1 in batch.resent:
            # Sent again to a node that never saw the script: its index step is not counted on.
            return replies[-1], False
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
        levels = self.layout.ancestry_keys(path)
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
            batch = Batch(self.client)
            pipe = batch.pipe
            self._change_entry(batch, key, name, False)
            pipe.zcard(key)
            _, left = batch.execute()
            folder = folder[: folder[:-1].rfind("/") + 1]
        # A write below may have come in between: put back whatever is there after all.
        self._restore_if_present(removed)
        self._unindex([path])
        return event_id.decode()

    def write_together(
        self, changes: Sequence[ThingWrite], guards: Guards = NO_GUARDS
    ) -> list[WriteResult | None]:
        """RedisStore.write_together thing by thing: the things live in different slots (most
        often on different nodes), which no MULTI or script spans. Every condition is checked
        first (one pipelined read): a conflict seen then writes nothing (PreconditionFailed).
        Then each change is its own put() or delete(), atomic and conditional for its thing, in
        order: a conflict that comes in between raises PartlyWritten (the changes before it
        stay written), and a failure or a crash part way leaves them written too. A reader may
        see some changes before the others (docs/firebase.md).

        `guards` are checked with the conditions, before the first write (GuardChanged: nothing
        written), not in the same step: no step spans the slots they lie in. A judged write
        holds the judged writes' turn meanwhile (turn.py, firebase/guarding.py), so no other
        judged write lands in between (docs/rules.md)."""
        paths = [change.path for change in changes]
        if len(set(paths)) != len(paths):
            raise ValueError("write_together: each thing may be changed once")
        self.check_sizes(changes)
        current = self.versions([*paths, *(path for path, _ in guards.versions)])
        if any(current[path] != version for path, version in guards.versions):
            raise GuardChanged()
        if guards.listings:
            for listing in guards.listings:
                names, cursor = self.list_names([(listing.folder, listing.after)], listing.limit)[0]
                if tuple(names) != listing.names or cursor != listing.cursor:
                    raise GuardChanged()
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
