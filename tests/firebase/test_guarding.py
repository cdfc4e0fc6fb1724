"""firebase/guarding.py on a real Redis: what the rules read guards the write until one lands.
A write that meets another writer (PreconditionFailed) and is retried keeps its guards, so a
permission revoked before the retry stops it (GuardChanged: nothing written)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from thingstash.core import documents
from thingstash.core.model import GuardChanged, Thing
from thingstash.core.store import Store
from thingstash.firebase import mapping, tree
from thingstash.firebase.guarding import Guarded, Recording
from thingstash.firebase.reading import read_value
from thingstash.store import open_store

from ..support.servers import RedisServer


def _put(store: Store, path: str, value: Any) -> None:
    store.put(path, documents.dumps(mapping.wrap(value)), 3600)


class _Racing:
    """The guarded store, with another writer acting between its reads of `box`: first
    changing `box` (the write's own condition fails), then revoking `perm/ada`."""

    def __init__(self, guarded: Store, plain: Store) -> None:
        self._guarded, self._plain, self._reads = guarded, plain, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._guarded, name)

    def get(self, path: str) -> Thing | None:
        thing = self._plain.get(path)
        if path == "box":
            self._reads += 1
            if self._reads == 1:
                _put(self._plain, "box", {"x": 2})
            elif self._reads == 2:
                _put(self._plain, "perm", {"ada": False})
        return thing


def test_a_retried_write_keeps_its_guards(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    store = open_store(redis_server.url)
    try:
        _put(store, "perm", {"ada": True})
        _put(store, "box", {"x": 1})
        recording = Recording(store)
        assert read_value(recording.as_store(), ("perm", "ada")) is True  # what a rule read
        guarded = Guarded(store, recording.guards()).as_store()
        racing: Any = _Racing(guarded, store)
        with pytest.raises(GuardChanged):
            tree.set_value(racing, ("box", "y"), 1, tree.Lifetime(3600))
        assert read_value(store, ("box",)) == {"x": 2}  # the write did not land
    finally:
        store.close()
