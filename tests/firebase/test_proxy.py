"""Behind a trusted proxy (THINGSTASH_PROXIES) the Firebase face sees the client's address
from X-Forwarded-For, as the native face does (web/stack.py installs ProxyFix for both): keyless
clients get a rate-limit bucket each, and the access log shows the client, not the proxy."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from thingstash.core.config import Settings
from thingstash.web import ratelimit
from thingstash.web.firebase.app import create_firebase_app
from thingstash.web.live import of as live_of

PROXY = "10.0.0.1"  # the address the server sees: the proxy's


@pytest.fixture
def firebase_app(settings: Settings) -> Iterator[Callable[..., Flask]]:
    """`firebase_app(**settings)`: Firebase faces on the test Redis, each closed after."""
    apps: list[Flask] = []

    def make(**overrides: object) -> Flask:
        app = create_firebase_app(settings.with_overrides(**overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        ratelimit.close(app)
        live_of(app).close()
        app.extensions["thingstash.store"].close()


def _get(app: Flask, forwarded_for: str) -> int:
    response = app.test_client().get(
        "/n.json",
        headers={"X-Forwarded-For": forwarded_for},
        environ_base={"REMOTE_ADDR": PROXY},
    )
    return response.status_code


def test_keyless_firebase_clients_behind_a_proxy_have_a_bucket_each(
    firebase_app: Callable[..., Flask],
) -> None:
    app = firebase_app(rate_limit="1/minute", proxies=1)
    assert _get(app, "203.0.113.1") == 200
    assert _get(app, "203.0.113.1") == 429
    assert _get(app, "203.0.113.2") == 200  # another client behind the same proxy
    # No proxy trusted: the header means nothing, every request is the proxy's.
    direct = firebase_app(rate_limit="1/minute")
    assert _get(direct, "203.0.113.3") == 200
    assert _get(direct, "203.0.113.4") == 429


def test_the_firebase_access_log_shows_the_client_behind_a_proxy(
    firebase_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thingstash.access")
    app = firebase_app(proxies=1)
    assert _get(app, "203.0.113.7") == 200
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "thingstash.access"]
    assert [(line["path"], line["client"]) for line in lines] == [("/n.json", "203.0.113.7")]
