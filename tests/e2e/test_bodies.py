"""Request bodies against `thingstash serve`, sent as HTTP clients can't: chunked past the limit,
cut short, trickled byte by byte. A body is taken whole or refused, nothing of a refused one is
stored, and slow senders never stall anyone else."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import orjson
import requests
from flask.testing import FlaskClient

from ..support.servers import RedisServer, Served

LIMIT = 1024 * 1024  # the default THINGSTASH_MAX_BODY the session's server runs with


def chunked(body: bytes, size: int = 8192) -> bytes:
    """`body` in Transfer-Encoding: chunked framing, ended properly."""
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    )
    return framed + b"0\r\n\r\n"


def head(method: str, path: str, content_type: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(server: Served, request: bytes, half_close: bool = False) -> tuple[int, dict]:
    """Send raw bytes, read the answer: (status, problem or JSON body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), orjson.loads(body)


def logged(server: Served, request_id: str, seconds: float = 10) -> str:
    """The access line of request `request_id`, once the server has answered it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in server.output().splitlines():
            if request_id in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} was never answered")


def absent(server: Served, *paths: str) -> bool:
    return all(requests.get(f"{server.url}/{p}", timeout=5).status_code == 404 for p in paths)


# -- past the limit ----------------------------------------------------------------------------


def test_a_chunked_put_past_the_limit_is_413_not_cut(served: Served) -> None:
    big = b'{"a":"' + b"x" * (2_600_000) + b'"}'
    request = head("PUT", "/bodies/big", "application/json", Transfer_Encoding="chunked")
    status, problem = exchange(served, request + chunked(big))
    assert (status, problem["status"]) == (413, 413)
    assert str(LIMIT) in problem["detail"]
    # Valid JSON once cut to the limit: before, it was stored.
    padded = b'{"a":1}' + b" " * 2_000_000
    request = head("PUT", "/bodies/padded", "application/json", Transfer_Encoding="chunked")
    status, problem = exchange(served, request + chunked(padded))
    assert (status, problem["title"]) == (413, "request entity too large")
    assert absent(served, "bodies/big", "bodies/padded")


def test_a_chunked_import_past_the_limit_is_413_and_stores_no_line(served: Served) -> None:
    pad = "x" * 100
    records = [{"path": f"bodies/imp/{i}", "thing": {"i": i, "pad": pad}} for i in range(7041)]
    body = b"\n".join(orjson.dumps(r) for r in records)
    assert len(body) > LIMIT
    request = head("POST", "/_import", "application/jsonl", Transfer_Encoding="chunked")
    status, problem = exchange(served, request + chunked(body))
    assert status == 413, problem
    assert absent(served, "bodies/imp/0", "bodies/imp/6990", "bodies/imp/7040")
    # The same lines under the limit, chunked, are all stored.
    fits = b"\n".join(orjson.dumps(r) for r in records[:50])
    status, answer = exchange(served, request + chunked(fits, 100))
    assert (status, answer) == (200, {"imported": 50, "created": 50})


# -- cut short ---------------------------------------------------------------------------------


def test_a_body_shorter_than_its_content_length_is_400_and_not_stored(served: Served) -> None:
    request = head("PUT", "/bodies/cut", "application/json", Content_Length="100")
    status, problem = exchange(served, request + b'{"a":1}', half_close=True)
    assert (status, problem["title"]) == (400, "incomplete body")
    assert "7 of the 100 bytes" in problem["detail"]
    assert absent(served, "bodies/cut")


def test_an_import_whose_client_goes_away_stores_nothing(served: Served) -> None:
    records = ({"path": f"bodies/gone/{i}", "thing": {"i": i}} for i in range(3))
    body = b"\n".join(orjson.dumps(r) for r in records)
    two_lines = body[: body.rindex(b"\n") + 1]
    request = head(
        "POST",
        "/_import",
        "application/jsonl",
        Content_Length=str(len(body)),
        X_Request_ID="bodies-import-gone",
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(request + two_lines)
        time.sleep(0.2)  # the two lines are read before the client goes
    assert '"status":400' in logged(served, "bodies-import-gone")
    assert absent(served, "bodies/gone/0", "bodies/gone/1")


def test_any_wsgi_server_gets_the_same_refusals(client: FlaskClient) -> None:
    """The mechanism is the app's, not granian's: the test client's input says so too."""
    cut = client.put("/bodies/x", data=b'{"a":1}', environ_overrides={"CONTENT_LENGTH": "100"})
    assert (cut.status_code, cut.get_json()["title"]) == (400, "incomplete body")
    bad = client.put("/bodies/x", data=b"{}", environ_overrides={"CONTENT_LENGTH": "2x"})
    assert (bad.status_code, bad.mimetype) == (400, "application/problem+json")
    assert client.get("/bodies/x").status_code == 404


# -- slow senders ------------------------------------------------------------------------------


def test_fifty_trickling_bodies_stall_nobody_else(served: Served) -> None:
    """50 clients send a body one byte every 0.5 s for 20 s; meanwhile /_health, a GET and a
    PUT from another client keep answering at once (they stalled when ~20 such clients held
    every place where requests are worked on)."""
    senders, hold_s = 50, 20.0
    body = b'{"slow":"' + b"x" * 29 + b'"}'  # 40 bytes at 0.5 s each: the 20 s
    step = hold_s / len(body)
    socks = []
    for i in range(senders):
        sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        sock.sendall(head("PUT", f"/bodies/slow/{i}", "application/json", Content_Length="40"))
        socks.append(sock)

    def trickle() -> None:
        for byte in body:
            for sock in socks:
                sock.sendall(bytes([byte]))
            time.sleep(step)

    trickler = threading.Thread(target=trickle)
    trickler.start()
    latencies: dict[str, list[float]] = {"health": [], "get": [], "put": []}
    try:
        requests.put(f"{served.url}/bodies/fast", json={"n": 0}, timeout=5)
        with requests.Session() as session:
            fast = f"{served.url}/bodies/fast"
            calls = {
                "health": lambda n: session.get(f"{served.url}/_health", timeout=10),
                "get": lambda n: session.get(fast, timeout=10),
                "put": lambda n: session.put(fast, json={"n": n}, timeout=10),
            }
            n = 0
            while trickler.is_alive():
                n += 1
                for name, call in calls.items():
                    started = time.perf_counter()
                    response = call(n)
                    latencies[name].append(time.perf_counter() - started)
                    assert response.status_code in (200, 201), response.text
                time.sleep(0.1)
    finally:
        trickler.join()
    answers = []
    for sock in socks:
        answers.append(sock.recv(4096).split(b" ", 2)[1])
        sock.close()
    assert answers == [b"201"] * senders  # every trickled body was taken whole in the end
    for name, seconds in latencies.items():
        print(
            f"{name}: {len(seconds)} requests, median {statistics.median(seconds) * 1000:.1f} ms,"
            f" max {max(seconds) * 1000:.1f} ms"
        )
        # A stall lasts as long as the senders (20 s); a loaded 2-core CI box answers well
        # within these bounds.
        assert statistics.median(seconds) < 0.1, name
        assert max(seconds) < 2.0, name


def test_a_body_still_arriving_after_the_timeout_is_408(redis_server: RedisServer) -> None:
    server = Served(
        ["--redis-url", redis_server.url],
        {"THINGSTASH_BODY_TIMEOUT": "1", "THINGSTASH_KEY_PREFIX": "slowbody"},
    ).start()
    piece = 16 * 1024  # bodies.PIECE_BYTES: the deadline is looked at between pieces
    body = b'{"a":"' + b"x" * (4 * piece - 8) + b'"}'
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            sock.sendall(head("PUT", "/late", "application/json", Content_Length=str(len(body))))
            for start in range(0, 3 * piece, piece):
                sock.sendall(body[start : start + piece])
                time.sleep(0.7)
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"connection: close" in answer.lower()
        assert b"did not arrive within 1 s" in answer
        assert requests.get(f"{server.url}/late", timeout=5).status_code == 404
    finally:
        server.stop()
