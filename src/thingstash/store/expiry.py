"""Expiry on one Redis: recording a thing gone by expiry (expire.lua) and reaping what the
expiry schedule says is due (reap.lua). Hearing Redis's own expiry notifications is
listening.py's, for both topologies."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from thingstash.store.base import StoreBase
from thingstash.store.common import (
    REAP_BATCH,
    REAP_GRACE_MS,
    ancestry,
    byte_strings,
    unavailable_on_redis_errors,
)
from thingstash.store.indexes import Section


class Expiry(StoreBase):
    """Store's expiry records and reaper on one Redis (a mixin of RedisStore)."""

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
        (schedule,) = self.layout.schedule_keys()
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
