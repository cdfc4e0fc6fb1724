"""A cluster's folders: listing pages, names and many things read in pipelined batches (a thing
in its own slot), the repair of stale index entries, a tree's delete and the pruning of
emptied folders in careful steps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from thingstash.core.config import MAX_PAGE_VALUE_BYTES
from thingstash.core.model import (
    VERSION_LENGTH,
    Page,
    Thing,
)
from thingstash.store.cluster_base import ClusterBase
from thingstash.store.common import (
    ancestry,
    byte_strings,
    unavailable_on_redis_errors,
)
from thingstash.store.folders import names_and_cursors


class ClusterFolders(ClusterBase):
    """Store's folders on a cluster (a mixin of ClusterStore)."""

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
