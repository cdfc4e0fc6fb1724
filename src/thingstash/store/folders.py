"""The folders of one Redis: listing pages (list.lua), names of many folders at once, reading
many things, and deleting a tree (purge.lua) with the pruning of emptied folders (prune.lua)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thingstash.core.config import MAX_PAGE_VALUE_BYTES
from thingstash.core.model import (
    Page,
    Thing,
    version_times_s,
)
from thingstash.store.base import StoreBase
from thingstash.store.common import (
    byte_strings,
    unavailable_on_redis_errors,
)
from thingstash.store.indexes import Section


def range_start(after: str | None) -> bytes:
    """Where names after `after` start, as ZRANGE BYLEX takes it."""
    return b"(" + after.encode("utf-8", "surrogatepass") if after else b"-"


def names_and_cursors(replies: list[Any], limit: int) -> list[tuple[list[str], str | None]]:
    """Store.list_names's answer from each folder's first `limit` + 1 names."""
    listed: list[tuple[list[str], str | None]] = []
    for raw in replies:
        names = [name.decode("utf-8", "surrogatepass") for name in byte_strings(raw)]
        listed.append((names[:limit], names[limit - 1] if len(names) > limit else None))
    return listed


class Folders(StoreBase):
    """Store's folders on one Redis (a mixin of RedisStore)."""

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
            self.layout.thing_key_head(folder),
            self.layout.folder_key_head(folder),
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
            args=[limit + 1, *(range_start(after) for _, after in starts)],
        )
        return names_and_cursors(replies, limit)

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
        # The folders above, for the script to drop the folder from them if the batch empties
        # it: in the same step, so no interruption can leave an emptied folder listed.
        keys, above = self.layout.purge_keys(folder, things)
        args = [folder, self.feed_retention, len(things), *things, *above]

        def remove(section: Section) -> int:
            for position, name in enumerate(things, start=4):
                section.remove(folder + name, position)
            return int(self._purge(keys=[*keys, *section.keys], args=[*args, *section.args()]))

        return self.index_keeper.run(remove)

    def _prune_folder(self, folder: str) -> None:
        if not folder:
            return
        keys, names = self.layout.prune_keys(folder)
        self._prune(keys=keys, args=names)
