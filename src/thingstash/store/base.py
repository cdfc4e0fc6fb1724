"""What every part of a store stands on: the client, the key layout (layout.py), the Lua scripts
registered once, the query index keeper, and the few methods one concern asks of another (each
defined by its own mixin: things.py, folders.py, feed.py, expiry.py). The store classes compose
the concerns over this base, as redis-py composes its command families (single.py, cluster.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from thingstash.core.config import DEFAULT_MAX_BODY
from thingstash.core.model import Thing
from thingstash.store.common import load_script
from thingstash.store.indexes import IndexKeeper, write_script
from thingstash.store.layout import Layout
from thingstash.store.lean import LeanRedis


def read_script(client: redis.Redis, script: str) -> Any:
    """A script that only reads: sent again after a dropped connection (store/lean.py)."""
    if isinstance(client, LeanRedis):
        return client.register_read_script(script)
    return client.register_script(script)


class StoreBase:
    """The client, the layout and the scripts of one store; no Store method of its own."""

    # Each write appends its event in the same script: the feed has one thing's events in the
    # order of its writes. (Not so on a cluster: ClusterStore.)
    feed_in_order = True
    # Write scripts check the index declarations' generation (one Redis: the same server).
    checks_generation_in_scripts = True
    declarations_refresh_s: float | None = None
    cluster_layout = False  # the key layout's topology (layout.py)

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
        self.layout = Layout(prefix, self.cluster_layout)
        self.feed_key = self.layout.feed_key
        self._get = read_script(client, load_script("get.lua"))
        self._get_many = read_script(client, load_script("get_many.lua"))
        # The scripts that write or remove things keep the query indexes too (indexes.lua).
        self._put = write_script(client, "put.lua")
        self._put_outside = write_script(client, "put.lua", "turn.lua")  # one Redis only
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

    # -- keys (the layout's) ------------------------------------------------------------------

    def thing_key(self, path: str) -> str:
        return self.layout.thing_key(path)

    def folder_key(self, folder: str) -> str:
        return self.layout.folder_key(folder)

    def subfolders_key(self, folder: str) -> str:
        return self.layout.subfolders_key(folder)

    def schedule_key(self, path: str) -> str:
        return self.layout.schedule_key(path)

    def _indexed_keys(self, path: str) -> tuple[list[str], list[str]]:
        return self.layout.write_keys(path)

    # -- what one concern asks of another (defined by the mixins named) -----------------------

    def get(self, path: str) -> Thing | None:  # things.py
        raise NotImplementedError

    def read_many(
        self, paths: Sequence[str], values: bool, budget: int
    ) -> list[Thing | None]:  # folders.py
        raise NotImplementedError

    def folder_names(self, folder: str, after: bytes, count: int) -> list[bytes]:  # folders.py
        raise NotImplementedError

    def _prune_folder(self, folder: str) -> None:  # folders.py
        raise NotImplementedError

    def feed_position(self) -> str:  # feed.py
        raise NotImplementedError

    def record_expiry(self, path: str) -> str | None:  # expiry.py
        raise NotImplementedError

    def record_expiries(self, paths: Sequence[str]) -> int:  # expiry.py
        raise NotImplementedError
