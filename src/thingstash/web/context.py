"""The app's shared parts, as views reach them during a request."""

from __future__ import annotations

from flask import Flask, current_app

from thingstash.config import Settings
from thingstash.store.single import Store

_STORE = "thingstash.store"
_SETTINGS = "thingstash.settings"


def store() -> Store:
    return current_app.extensions[_STORE]


def settings() -> Settings:
    return current_app.extensions[_SETTINGS]


def install(app: Flask, settings: Settings, store: Store) -> None:
    app.extensions[_SETTINGS] = settings
    app.extensions[_STORE] = store
