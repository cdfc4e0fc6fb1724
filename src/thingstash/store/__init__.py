"""The stores: the only package that imports redis. `open_store(url)` gives the store a URL
names (one Redis or a Redis Cluster), implementing thingstash.core.store.Store."""

from __future__ import annotations

from thingstash.store.open import open_store

__all__ = ["open_store"]
