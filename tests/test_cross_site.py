"""Issue 21, items 1 and 9: web pages the CORS policy does not allow change nothing, on both faces
and the fast path (web/crosssite.py); the Firebase face takes JSON bodies only; HTTP/1.0
without a Host header is served by a loopback server. The browser itself is in
test_cross_site_browser.py."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest
import redis

from .conftest import RedisServer
from .fbserve import FirebaseServed, start_firebase

SEED = {"v": 1}


# -- HTTP/1.0 without Host (item 9) ---------------------------------------------------------------


def raw(port: int, request: bytes) -> tuple[int, bytes]:
    """Send `request` exactly as written; the status and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), body


@pytest.fixture(scope="module")
def served_pair(redis_server: RedisServer) -> Iterator[FirebaseServed]:
    """`serve --firebase-port` on loopback, its store open; module-wide (data reset per test)."""
    served = start_firebase(redis_server.url)
    yield served
    served.native.stop()


@pytest.fixture
def pair(served_pair: FirebaseServed, redis_client: redis.Redis) -> FirebaseServed:
    """The served pair over an emptied store, with `seed/a` in it."""
    response = httpx.put(f"{served_pair.native.url}/seed/a", json=SEED, timeout=10)
    assert response.status_code == 201, response.text
    return served_pair


def test_http_1_0_without_host_is_served_on_both_faces(pair: FirebaseServed) -> None:
    # What HAProxy's default health check sends: no Host at all.
    status, body = raw(pair.native.port, b"GET /_health HTTP/1.0\r\n\r\n")
    assert status == 200, body
    status, body = raw(pair.native.port, b"GET /seed/a HTTP/1.0\r\n\r\n")  # the fast path
    assert status == 200, body
    assert json.loads(body)["v"] == 1
    status, body = raw(pair.native.port, b"GET /seed/ HTTP/1.0\r\n\r\n")
    assert status == 200, body
    assert [t["path"] for t in json.loads(body)["things"]] == ["seed/a"]
    put = b'{"v": 2}'
    status, body = raw(
        pair.native.port,
        b"PUT /seed/b HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(put), put),
    )
    assert status == 201, body
    status, body = raw(pair.port, b"GET /seed.json HTTP/1.0\r\n\r\n")
    assert status == 200, body
    assert json.loads(body) == {"a": {"v": 1}, "b": {"v": 2}}


def test_another_host_is_still_421_over_http_1_0(pair: FirebaseServed) -> None:
    for port in (pair.native.port, pair.port):
        status, body = raw(port, b"GET /seed/a HTTP/1.0\r\nHost: evil.example\r\n\r\n")
        assert status == 421, body
