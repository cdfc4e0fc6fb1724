"""The app's shared parts, as views reach them during a request."""

from __future__ import annotations

from flask import Flask, current_app

from thingstash.config import Settings
from thingstash.model import Store

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


def install(app: Flask, settings: Settings, store: Store) -> None:
    app.extensions[_SETTINGS] = settings
    app.extensions[_STORE] = store
