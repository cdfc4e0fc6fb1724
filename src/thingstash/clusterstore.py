"""The store on a Redis Cluster: the same keys and scripts as storage.Store, split by hash slot.

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
  careful way; listings skip (and remove) empty folders that an interruption left behind.

docs/cluster.md gives the guarantees that follow.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.cluster import RedisCluster

from thingstash.storage import (
    NO_CONDITIONS,
    UNAVAILABLE_ERRORS,
    Conditions,
    Entry,
    Page,
    PreconditionFailed,
    Store,
    Thing,
    ThingMissing,
    WriteResult,
    _encode_condition,
    _unavailable_on_redis_errors,
    ancestry,
    new_version,
)


class ClusterStore(Store):
    """Things in a Redis Cluster. Same methods and errors as Store."""

    client: RedisCluster

    def _ancestry_keys(self, path: str) -> list[tuple[str, str]]:
        """(folder index key, name in it) for every level above `path`, its parent first."""
        return [(self.folder_key(folder), name) for folder, name in ancestry(path)]

    def _index(self, entries: Iterable[tuple[str, str]], feed: dict[str, str] | None = None):
        """Add names to folder indexes (and one event to the feed) in one pipelined batch;
        return the event id."""
        pipe = self.client.pipeline(transaction=False)
        for key, name in entries:
            pipe.zadd(key, {name: 0})
        if feed is not None:
            pipe.xadd(self.feed_key, feed, maxlen=int(self.feed_retention), approximate=True)
        results = pipe.execute()
        return results[-1].decode() if feed is not None and results else None

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

    # -- things -------------------------------------------------------------------------------

    @_unavailable_on_redis_errors
    def put(
        self,
        path: str,
        body: bytes,
        ttl_seconds: int,
        conditions: Conditions = NO_CONDITIONS,
        event: str = "put",
        version: str | None = None,
    ) -> WriteResult:
        version = version or new_version()
        ttl_ms = ttl_seconds * 1000
        payload = version.encode("ascii") + body
        entries = self._ancestry_keys(path)
        if conditions.if_match is None:
            # The write may create the thing: index it first, so that no interruption can
            # leave a thing that exists but is not listed. (If-Match means it exists, indexed.)
            self._index(entries)
        status, detail = self._put(
            keys=[self.thing_key(path)],
            args=[
                _encode_condition(conditions.if_match),
                _encode_condition(conditions.if_none_match),
                payload,
                ttl_ms,
                event,
                path,
                self.feed_retention,
            ],
        )
        if status == 0:
            raise PreconditionFailed(detail.decode("ascii") if detail else None)
        created = status == 1
        event_id = self._index(
            entries if created else (),
            {"e": event, "p": path, "d": payload, "t": str(ttl_ms)},
        )
        return WriteResult(created, version, ttl_ms, event_id)

    @_unavailable_on_redis_errors
    def delete(self, path: str, conditions: Conditions = NO_CONDITIONS) -> str | None:
        reply = self._delete(
            keys=[self.thing_key(path)],
            args=[_encode_condition(conditions.if_match), path, self.feed_retention],
        )
        if reply[0] == -1:
            raise ThingMissing(path)
        if reply[0] == 0:
            raise PreconditionFailed(reply[1].decode("ascii") if reply[1] else None)
        levels = self._ancestry_keys(path)
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(*levels[0])
        pipe.zcard(levels[0][0])  # same key, same node: counted after the ZREM
        pipe.xadd(
            self.feed_key,
            {"e": "delete", "p": path},
            maxlen=int(self.feed_retention),
            approximate=True,
        )
        _, left, event_id = pipe.execute()
        # As on one Redis, a folder left empty leaves its parent, and so on up.
        removed = [path]
        folder = path[: path.rfind("/") + 1]
        for key, name in levels[1:]:
            if left:
                break
            removed.append(folder)
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(key, name)
            pipe.zcard(key)
            _, left = pipe.execute()
            folder = folder[: folder[:-1].rfind("/") + 1]
        # A write below may have come in between: put back whatever is there after all.
        self._restore_if_present(removed)
        return event_id.decode()

    # -- folders ------------------------------------------------------------------------------

    @_unavailable_on_redis_errors
    def list_folder(self, folder: str, after: str | None, limit: int) -> Page:
        start = b"(" + after.encode("utf-8", "surrogatepass") if after else b"-"
        key = self.folder_key(folder)
        names = self.client.zrange(key, start, b"+", bylex=True, offset=0, num=limit + 1)
        more = len(names) > limit
        names = names[:limit]
        # One pipelined batch: each thing's value and lifetime, whether each sub-folder has
        # anything in it (an empty one may be left behind by deletes).
        pipe = self.client.pipeline(transaction=False)
        for raw in names:
            name = raw.decode()
            if name.endswith("/"):
                pipe.exists(self.folder_key(folder + name))
            else:
                pipe.get(self.thing_key(folder + name))
                pipe.pttl(self.thing_key(folder + name))
        replies = iter(pipe.execute()) if names else iter(())
        entries, stale = [], []
        for raw in names:
            name = raw.decode()
            if name.endswith("/"):
                if next(replies):
                    entries.append(Entry(name, None))
                else:
                    stale.append(name)
                continue
            payload, ttl_ms = next(replies), next(replies)
            if payload is None or ttl_ms == -2:
                stale.append(name)
            else:
                entries.append(Entry(name, Thing.from_payload(payload, ttl_ms)))
        if stale:
            self._remove_stale(folder, stale)
        return Page(entries, names[-1].decode() if more else None)

    def _remove_stale(self, folder: str, names: list[str]) -> None:
        """Take out entries for things or folders that are gone, then put back any that came
        back meanwhile (a write may be between its index step and its thing step)."""
        self.client.zrem(self.folder_key(folder), *names)
        self._restore_if_present([folder + name for name in names])

    # -- service ------------------------------------------------------------------------------

    def ping(self) -> bool:
        """Healthy when every primary answers: a slot without one cannot be served."""
        try:
            return bool(self.client.ping(target_nodes=RedisCluster.PRIMARIES))
        except (*UNAVAILABLE_ERRORS, OSError):
            return False

    def close(self) -> None:
        close_cluster(self.client)


def close_cluster(client: RedisCluster) -> None:
    """RedisCluster.close() leaves each node's connection pool open: close those too."""
    for node in client.get_nodes():
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.disconnect()
    client.close()
