"""The app's shared parts, as views reach them during a request."""

from __future__ import annotations

from flask import Flask, current_app

from thingstash.core.config import ConfigError, Settings
from thingstash.core.store import Store
from thingstash.store import open_store

_STORE = "thingstash.store"
_SETTINGS = "thingstash.settings"


def store() -> Store:
    the_store: Store = current_app.extensions[_STORE]
    return the_store


def settings() -> Settings:
    return settings_of(current_app)


def settings_of(app: Flask) -> Settings:
    """The settings `app` runs with (outside a request too)."""
    settings: Settings = app.extensions[_SETTINGS]
    return settings


def configured(settings: Settings | None, store: Store | None) -> tuple[Settings, Store]:
    """What an app (either face) runs with: the settings given or read from the environment,
    and the store given or opened from them."""
    settings = settings or Settings.from_env()
    if store is None:
        if not settings.redis_url:
            raise ConfigError(
                "no Redis to use: set REDIS_URL, or run `thingstash serve` for an embedded one"
            )
        store = open_store(settings.redis_url, settings.key_prefix, settings.feed_retention)
    # One size limit for a thing, checked by the store on every write (a body, a merge, an
    # increment alike): the body limit.
    store.max_thing_bytes = settings.max_body
    return settings, store


def install(app: Flask, settings: Settings, store: Store) -> None:
    app.extensions[_SETTINGS] = settings
    app.extensions[_STORE] = store
