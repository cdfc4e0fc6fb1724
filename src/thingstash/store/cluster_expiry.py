"""A cluster's expiry records and reaper: the schedule's shards, the things, their folder
indexes and the feed in different slots, each step one pipelined batch (settle.lua per shard).
Hearing notifications is listening.py's."""

from __future__ import annotations

import time
from collections.abc import Sequence

from thingstash.store.cluster_base import Batch, ClusterBase
from thingstash.store.common import (
    REAP_BATCH,
    REAP_GRACE_MS,
    unavailable_on_redis_errors,
)


class ClusterExpiry(ClusterBase):
    """Store's expiry on a cluster (a mixin of ClusterStore)."""

    @unavailable_on_redis_errors
    def record_expiry(self, path: str) -> str | None:
        """As Store.record_expiry in steps: the thing is gone, its index entry is the guard
        (only the process whose ZREM removes it logs the event), then folders left empty."""
        if self.client.exists(self.thing_key(path)):
            return None
        self._unindex([path])
        levels = self.layout.ancestry_keys(path)
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
        shards = self.layout.schedule_keys()
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
            key, name = next(iter(self.layout.ancestry_keys(path)))
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
            batch = Batch(self.client)
            pipe = batch.pipe
            for path, pttl in back:
                for key, name in self.layout.ancestry_keys(path):
                    self._change_entry(batch, key, name, True)
                pipe.zadd(self.schedule_key(path), {path: now_ms + max(pttl, 1)}, lt=True)
            batch.execute()
        return len(removed)
