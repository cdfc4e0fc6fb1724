"""What a cluster store's parts stand on: the cluster client, the scripts only a cluster uses, and
the one pipelined helper with the one script fallback (Batch), with the steps every cluster write
shares: folder index entries (folder_entries.lua for a sub-folder's), the feed event, the repair
of entries whose thing came back, and the query index entries that follow a thing
(index_entry.lua). The order of those steps is cluster.py's docstring's."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from redis.cluster import ClusterPipeline, RedisCluster
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, FieldT

from thingstash.store.base import StoreBase
from thingstash.store.common import load_script

# A feed entry as XADD takes it: e(vent), p(ath), and for a write d(ata) and t(tl ms).
EventFields = dict[FieldT, EncodableT]


class Batch:
    """One pipelined batch on a cluster (a round trip per node), scripts included: the one
    script fallback. A script is sent as EVALSHA (the evalsha method is refused in cluster
    pipelines; the command routes by its key); a node that never saw it (a replica promoted
    since, a new node) refuses it, and execute() then makes the plain call, which loads it on
    every primary and runs it."""

    def __init__(self, client: RedisCluster) -> None:
        self.pipe: ClusterPipeline = client.pipeline(transaction=False)
        self._scripted: list[tuple[int, Any, list[Any], list[Any]]] = []
        self.resent: set[int] = set()  # positions of the scripts sent again by execute()

    def __len__(self) -> int:
        return len(self.pipe)

    def script(self, script: Any, keys: list[Any], args: list[Any]) -> None:
        """Queue a call of `script` (registered on the cluster client)."""
        self._scripted.append((len(self.pipe), script, keys, args))
        self.pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        """The replies, each script a node refused for lack of it sent again; with
        `raise_on_error`, the first error left is raised, else errors are among the replies."""
        replies: list[Any] = self.pipe.execute(raise_on_error=False)
        for position, script, keys, args in self._scripted:
            if isinstance(replies[position], NoScriptError):
                replies[position] = script(keys=keys, args=args)
                self.resent.add(position)
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies


class ClusterBase(StoreBase):
    """The cluster client and the steps every cluster write shares (mixins of ClusterStore
    derive from it)."""

    # redis-py types RedisCluster apart from Redis (no common base), though it takes every
    # command the methods inherited from RedisStore send: hence the ignore.
    client: RedisCluster  # type: ignore[assignment]

    def _init_cluster(self) -> None:
        """Register the scripts only a cluster uses (after StoreBase.__init__)."""
        self._index_entry = self.client.register_script(load_script("index_entry.lua"))
        self._feed_node = self.client.register_script(load_script("feed_node.lua"))
        self._feed_replid: str | None = None
        self._feed_lock = threading.Lock()
        self._settle = self.client.register_script(load_script("settle.lua"))
        self._folder_entries = self.client.register_script(
            load_script("folders.lua") + load_script("folder_entries.lua")
        )

    def _change_entry(self, batch: Batch, key: str, name: str, add: bool) -> None:
        """Queue adding (or removing) `name` in the folder index `key`: a thing's name is a
        plain ZADD (ZREM); a sub-folder's is folder_entries.lua, which keeps the folder's
        sub-folder set in the same step."""
        if not name.endswith("/"):
            if add:
                batch.pipe.zadd(key, {name: 0})
            else:
                batch.pipe.zrem(key, name)
            return
        keys = [key, self.layout.subfolders_of(key)]
        batch.script(self._folder_entries, keys, ["add" if add else "remove", name])

    def _change_entries(self, key: str, names: Sequence[str], add: bool) -> None:
        """Add (or remove) names in one folder index, one pipelined batch."""
        batch = Batch(self.client)
        for name in names:
            self._change_entry(batch, key, name, add)
        batch.execute()

    def _index(
        self,
        entries: Iterable[tuple[str, str]],
        feed: EventFields | None = None,
        expires_at_ms: int | None = None,
    ) -> str | None:
        """Add names to folder indexes (and one thing's expiry to the schedule, and its event to
        the feed) in one pipelined batch; return the event id."""
        batch = Batch(self.client)
        pipe = batch.pipe
        for key, name in entries:
            self._change_entry(batch, key, name, True)
        if feed is not None and expires_at_ms is not None:
            path = str(feed["p"])
            pipe.zadd(self.schedule_key(path), {path: expires_at_ms}, lt=True)
        if feed is not None:
            self._log_event(feed, pipe)
        results = batch.execute()
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
        entries = [entry for path in present for entry in self.layout.ancestry_keys(path)]
        if entries:
            self._index(entries)

    def set_index_entries(self, operations: Sequence[tuple[str, str, str, bytes, bytes]]) -> None:
        """index_entry.lua for each (sorted set, hash, name, member, when), one pipelined batch."""
        if not operations:
            return
        batch = Batch(self.client)
        for zset, hash_key, name, member, when in operations:
            batch.script(self._index_entry, [zset, hash_key], [name, member, when])
        batch.execute()

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
