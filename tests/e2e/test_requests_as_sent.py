"""The request as the client sent it: a path with a leading `//` or invalid UTF-8, a repeated
query parameter. HTTP clients (and Werkzeug's test client) normalise the first two away, so
they go over a raw socket to a real `thingstash serve`."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from flask.testing import FlaskClient

from ..support.servers import Served
from ..web.test_errors import assert_problem


def raw_request(served: Served, method: str, target: str, body: bytes = b"") -> tuple[int, dict]:
    """Send one request exactly as written; return its status and JSON body."""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(head.encode("ascii") + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"chunked" not in headers.lower(), "the server answers with a length"
    return int(status_line.split()[1]), json.loads(payload) if payload else {}


@pytest.mark.parametrize("target", ["//a/x", "//a/", "///a/x", "/%2Fa/x"])
def test_a_leading_empty_segment_is_400(served: Served, target: str) -> None:
    for method, body in (("PUT", b'{"v":1}'), ("GET", b""), ("DELETE", b"")):
        status, problem = raw_request(served, method, target, body)
        assert status == 400, (method, target, problem)
        assert "empty segment" in problem["detail"]
    assert requests.get(f"{served.url}/a/x", timeout=10).status_code == 404


@pytest.mark.parametrize("target", ["/utf/a%FF", "/utf/%C3", "/utf/%ED%A0%80", "/utf/%FF/"])
def test_a_path_that_is_not_utf8_is_400(served: Served, target: str) -> None:
    for method, body in (("PUT", b'{"v":1}'), ("GET", b""), ("POST", b'{"v":1}')):
        status, problem = raw_request(served, method, target, body)
        assert status == 400, (method, target, problem)
        assert "UTF-8" in problem["detail"]
    listing = requests.get(f"{served.url}/utf/", timeout=10).json()
    assert listing["things"] == [] and listing["folders"] == []


def test_utf8_paths_still_work_over_the_wire(served: Served) -> None:
    status, _ = raw_request(served, "PUT", "/utf8/%C3%A4%EF%BF%BD", b'{"v":1}')
    assert status in (200, 201)
    answer = requests.get(f"{served.url}/utf8/", timeout=10).json()
    assert [t["path"] for t in answer["things"]] == ["utf8/ä\ufffd"]
    requests.delete(f"{served.url}/utf8/?recursive=true", timeout=10)


@pytest.mark.parametrize(
    "method, url",
    [
        ("PUT", "/x?ttl=60&ttl=70"),
        ("PUT", "/x?ttl=60&ttl=60"),
        ("PATCH", "/x?ttl=60&ttl=70"),
        ("POST", "/f/?ttl=60&ttl=70"),
        ("GET", "/f/?limit=5&limit=6"),
        ("GET", "/f/?values=true&values=false"),
        ("GET", "/f/?cursor=YQ&cursor=Yg"),
        ("DELETE", "/f/?recursive=true&recursive=true"),
    ],
)
def test_a_repeated_parameter_is_400(client: FlaskClient, method: str, url: str) -> None:
    client.put("/x", json={"v": 1})
    client.put("/f/kept", json={"v": 1})
    name = url.split("?")[1].split("=")[0]
    body = assert_problem(client.open(url, method=method, json={"v": 2}), 400, name)
    assert "once" in body["detail"]
    assert client.get("/x").get_json()["v"] == 1
    assert client.get("/f/kept").status_code == 200
    assert len(client.get("/f/").get_json()["things"]) == 1
