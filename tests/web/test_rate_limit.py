"""The rate limit: a budget per client shared through Redis by every worker, counted per
forwarded client behind a trusted proxy, `/_health` never limited, a bad setting refused."""

from __future__ import annotations

import pytest

from thingstash.core.config import Settings
from thingstash.web.app import create_app

pytestmark = pytest.mark.cluster


def test_rate_limit(app_with, redis_client) -> None:  # type: ignore[no-untyped-def]
    client = app_with(rate_limit="3/minute")
    statuses = [client.get("/nothing").status_code for _ in range(3)]
    assert statuses == [404, 404, 404]
    over = client.get("/nothing")
    assert over.status_code == 429
    assert over.mimetype == "application/problem+json"
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert client.get("/_health").status_code == 200  # never limited
    # Shared through Redis: a second app (another worker or process) sees the same count.
    other = app_with(rate_limit="3/minute")
    assert other.get("/nothing").status_code == 429
    assert any(k.startswith(b"ts:rl") for k in redis_client.scan_iter())
    # Limited per client: another address has its own budget.
    fresh = other.get("/nothing", environ_base={"REMOTE_ADDR": "127.0.0.2"})
    assert fresh.status_code == 404


def test_rate_limit_per_forwarded_client_behind_a_proxy(app_with) -> None:  # type: ignore[no-untyped-def]
    client = app_with(rate_limit="1/minute", proxies=1)
    first = {"X-Forwarded-For": "203.0.113.1"}
    assert client.get("/n", headers=first).status_code == 404
    assert client.get("/n", headers=first).status_code == 429
    assert client.get("/n", headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 404
    direct = app_with(rate_limit="1/minute")  # no proxy trusted: the header means nothing
    assert direct.get("/n", headers={"X-Forwarded-For": "203.0.113.3"}).status_code == 404
    assert direct.get("/n", headers={"X-Forwarded-For": "203.0.113.4"}).status_code == 429


def test_bad_rate_limit_refused(settings: Settings) -> None:
    from thingstash.core.config import ConfigError

    with pytest.raises(ConfigError):
        create_app(settings.with_overrides(rate_limit="lots"))
