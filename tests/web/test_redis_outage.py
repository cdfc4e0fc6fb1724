"""Redis stopped under a running app and started again: every request a 503 with
Retry-After meanwhile, then the service answers again by itself."""

from __future__ import annotations

from pathlib import Path

from thingstash.core.config import Settings
from thingstash.web.app import create_app

from ..support.servers import RedisServer, close_app


def test_redis_stopped_and_started_again(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    app = create_app(Settings(redis_url=server.url))
    client = app.test_client()
    try:
        assert client.put("/a", json={"v": 1}).status_code == 201
        server.stop()
        for method, path in (("get", "/a"), ("put", "/a"), ("get", "/"), ("delete", "/a")):
            response = getattr(client, method)(path, json={"v": 2})
            assert response.status_code == 503, (method, path)
            assert response.headers["Retry-After"] == "1"
            body = response.get_json()
            assert body["status"] == 503 and "Error" not in body["detail"]
        health = client.get("/_health")
        assert health.status_code == 503 and health.headers["Retry-After"]
        auth = client.get("/a", headers={"Authorization": "Bearer tsk_000000000000_x"})
        assert auth.status_code == 503
        server.start()  # same port
        assert client.get("/_health").status_code == 200
        assert client.put("/a", json={"v": 3}).status_code == 201
        assert client.get("/a").get_json()["v"] == 3
        text = client.get("/_metrics").get_data(as_text=True)
        assert "thingstash_redis_errors_total" in text and "thingstash_things_stored 1.0" in text
    finally:
        close_app(app)  # its live threads too: they would go on trying a stopped server
        server.stop()
