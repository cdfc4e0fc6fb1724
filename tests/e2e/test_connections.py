"""Connections against `thingstash serve` (both faces), over raw sockets: every connection has a
deadline for its headers and its body, an idle one is closed, and what holds a thread for long
(open streams, bodies still arriving) is counted per process and per client, a request past the
count answered `503` with `Retry-After` at once (issue 21, items 2 and 3)."""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import time
from collections.abc import Iterator

import orjson
import pytest
import requests

from ..support.ports import free_port
from ..support.servers import RedisServer, Served

BODY_TIMEOUT = 2
HEADER_TIMEOUT = 2
MAX_STREAMS, MAX_STREAMS_PER_CLIENT = 3, 2
MAX_BODIES, MAX_BODIES_PER_CLIENT = 6, 2


class Faces:
    def __init__(self, native: Served, firebase_port: int) -> None:
        self.native = native
        self.ports = {"native": native.port, "firebase": firebase_port}


@pytest.fixture(scope="module")
def faces(redis_server: RedisServer) -> Iterator[Faces]:
    firebase_port = free_port()
    native = Served(
        ["--redis-url", redis_server.url, "--firebase-port", str(firebase_port)],
        {
            "THINGSTASH_WORKERS": "1",  # one process: its counts are the server's
            "THINGSTASH_KEY_PREFIX": "conns",
            "THINGSTASH_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "THINGSTASH_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "THINGSTASH_MAX_STREAMS": str(MAX_STREAMS),
            "THINGSTASH_MAX_STREAMS_PER_CLIENT": str(MAX_STREAMS_PER_CLIENT),
            "THINGSTASH_MAX_BODIES": str(MAX_BODIES),
            "THINGSTASH_MAX_BODIES_PER_CLIENT": str(MAX_BODIES_PER_CLIENT),
            # A closed stream is noticed at its next keep-alive.
            "THINGSTASH_KEEPALIVE": "1",
            "THINGSTASH_FIREBASE_KEEPALIVE": "1",
        },
    ).start()
    wait_for_firebase(native, firebase_port)
    yield Faces(native, firebase_port)
    native.stop()


def wait_for_firebase(served: Served, port: int) -> None:
    """Until the Firebase face of `served` (its own process, started beside it) answers."""
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/.json", timeout=2)
            return
        except requests.ConnectionError:
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.05)


def readable(socks: list[socket.socket], seconds: float) -> list[socket.socket]:
    """Those of `socks` with something to read (or closed) within `seconds`: poll, as select()
    takes no file number past 1023."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in socks}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(seconds * 1000)]


def connect(port: int, client: str = "127.0.0.1") -> socket.socket:
    """A connection to `port` from the loopback address `client` (another client's address)."""
    return socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(client, 0))


def request_head(method: str, path: str, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines)
        }

    def json(self) -> dict:
        return orjson.loads(self.body)


def answer_within(sock: socket.socket, seconds: float, complete: bool = True) -> Answer:
    """The answer on `sock` once it has come (its whole body, unless `complete` is False: the
    head and what came with it), failing if it takes longer than `seconds`."""
    deadline = time.monotonic() + seconds
    raw = b""
    while True:
        if b"\r\n\r\n" in raw:
            answer = Answer(raw)
            length = int(answer.headers.get("content-length", -1))
            if not complete or len(answer.body) >= length >= 0:
                return answer
        left = deadline - time.monotonic()
        assert left > 0, f"no whole answer within {seconds} s: {raw[:300]!r}"
        if readable([sock], left):
            data = sock.recv(65536)
            assert data, f"the connection closed before its answer: {raw[:300]!r}"
            raw += data


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes `sock` (reading and dropping what it sends)."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {seconds} s") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def things_path(face: str, path: str) -> str:
    return f"/{path}.json" if face == "firebase" else f"/{path}"


# -- the body's deadline (item 3) -----------------------------------------------------------------


@pytest.mark.parametrize("face", ["native", "firebase"])
def test_a_body_trickled_byte_by_byte_is_408_at_its_timeout(faces: Faces, face: str) -> None:
    """One byte every 0.5 s of a 40-byte body: the answer is 408 once BODY_TIMEOUT (2 s) has
    passed, whatever the pieces' size (before, nothing until the body was whole, 20 s later,
    and then 201)."""
    body = b'{"slow":"' + b"x" * 29 + b'"}'
    path = things_path(face, "conns/trickled")
    with connect(faces.ports[face]) as sock:
        sock.sendall(
            request_head(
                "PUT", path, Content_Type="application/json", Content_Length=str(len(body))
            )
        )
        started = time.monotonic()
        answered = None
        for byte in body:
            sock.sendall(bytes([byte]))
            if readable([sock], 0.5):
                answered = answer_within(sock, 1)
                break
        assert answered is not None, "the whole body was taken, never timed out"
        took = time.monotonic() - started
    assert answered.status == 408
    assert BODY_TIMEOUT <= took < BODY_TIMEOUT + 1.5, took
    assert answered.headers["connection"] == "close"
    if face == "native":
        assert answered.json()["detail"].startswith(
            f"the body did not arrive within {BODY_TIMEOUT} s"
        )
    else:
        assert f"did not arrive within {BODY_TIMEOUT} s" in answered.json()["error"]
    stored = requests.get(f"http://127.0.0.1:{faces.ports[face]}{path}", timeout=5)
    if face == "native":
        assert stored.status_code == 404  # nothing stored
    else:
        assert stored.json() is None


def test_a_body_that_never_comes_is_408_at_its_timeout(faces: Faces) -> None:
    """Headers announcing 100 bytes, then 5: 408 after BODY_TIMEOUT (before: never), and the
    rest of the body sent after the 408 stores nothing either."""
    body = b'{"a":"' + b"x" * 92 + b'"}'
    with connect(faces.native.port) as sock:
        sock.sendall(
            request_head(
                "PUT", "/conns/stalled", Content_Type="application/json", Content_Length="100"
            )
            + body[:5]
        )
        answered = answer_within(sock, BODY_TIMEOUT + 1.5)
        sock.sendall(body[5:])  # the request's thread now has its whole body
        time.sleep(0.5)
    assert answered.status == 408
    assert answered.json()["detail"] == (
        f"the body did not arrive within {BODY_TIMEOUT} s; nothing was stored"
    )
    assert requests.get(f"{faces.native.url}/conns/stalled", timeout=5).status_code == 404


def test_bodies_still_arriving_are_counted_per_client_and_per_process(faces: Faces) -> None:
    """Past MAX_BODIES_PER_CLIENT stalled bodies from one client, its next body is refused at
    once (503, Retry-After) while another client's PUT is taken; past MAX_BODIES in all, every
    body is refused at once; once the stalled clients go, bodies are taken again."""
    url = faces.native.url
    stalled: list[socket.socket] = []

    def stall(client: str) -> socket.socket:
        sock = connect(faces.native.port, client)
        sock.sendall(
            request_head("PUT", "/conns/held", Content_Type="application/json", Content_Length="50")
        )
        stalled.append(sock)
        return sock

    def put_from(client: str) -> Answer:
        body = b'{"n":1}'
        with connect(faces.native.port, client) as sock:
            sock.sendall(
                request_head(
                    "PUT", "/conns/quick", Content_Type="application/json", Content_Length="7"
                )
                + body
            )
            return answer_within(sock, 1)

    try:
        for _ in range(MAX_BODIES_PER_CLIENT):
            stall("127.0.0.3")
        time.sleep(0.3)  # the server has them
        refused = put_from("127.0.0.3")
        assert refused.status == 503
        assert refused.headers["retry-after"] == "1"
        assert "too many request bodies still arriving" in refused.json()["detail"]
        assert put_from("127.0.0.1").status == 201  # another client is not bothered
        for client in ("127.0.0.4", "127.0.0.5"):
            for _ in range(MAX_BODIES_PER_CLIENT):
                stall(client)
        time.sleep(0.3)
        refused = put_from("127.0.0.1")
        assert refused.status == 503
        assert "the server has 6 open already" in refused.json()["detail"]
        # A GET reads no body: it is answered.
        assert requests.get(f"{url}/conns/quick", timeout=1).status_code == 200
    finally:
        for sock in stalled:
            sock.close()
    deadline = time.monotonic() + 5
    while put_from("127.0.0.3").status == 503:  # the readers end when their clients go
        assert time.monotonic() < deadline, "the places of the gone clients never came back"
        time.sleep(0.1)


# -- the headers' deadline and idle connections (item 2) ----------------------------------------


@pytest.mark.parametrize("face", ["native", "firebase"])
def test_a_stalled_request_head_is_closed_at_the_header_timeout(faces: Faces, face: str) -> None:
    with connect(faces.ports[face]) as sock:
        sock.sendall(b"GET /_health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half")
        took = closed_within(sock, HEADER_TIMEOUT + 3)
    assert took >= HEADER_TIMEOUT - 0.5, took


@pytest.mark.parametrize("face", ["native", "firebase"])
def test_an_idle_keep_alive_connection_is_closed_at_the_header_timeout(
    faces: Faces, face: str
) -> None:
    with connect(faces.ports[face]) as sock:
        sock.sendall(request_head("GET", things_path(face, "conns/none")))
        answered = answer_within(sock, 2)
        assert answered.headers.get("connection") != "close"  # kept alive
        took = closed_within(sock, HEADER_TIMEOUT + 3)
    assert took >= HEADER_TIMEOUT - 0.5, took


# -- open streams, counted (item 2) --------------------------------------------------------------


def open_stream(port: int, path: str, client: str = "127.0.0.1") -> tuple[socket.socket, Answer]:
    sock = connect(port, client)
    sock.sendall(request_head("GET", path, Accept="text/event-stream"))
    return sock, answer_within(sock, 1, complete=False)


def open_streams_metric(url: str) -> float:
    for line in requests.get(f"{url}/_metrics", timeout=5).text.splitlines():
        if line.startswith("thingstash_open_streams "):
            return float(line.split()[1])
    raise AssertionError("no thingstash_open_streams in /_metrics")


@pytest.mark.parametrize("face", ["native", "firebase"])
def test_open_streams_are_counted_per_client_and_per_process(faces: Faces, face: str) -> None:
    """MAX_STREAMS_PER_CLIENT streams from one client, then its next one is refused at once (503,
    Retry-After); another client gets the last place, then the process is full; a place comes
    back when its stream's client goes."""
    port = faces.ports[face]
    path = things_path(face, "conns/watched")
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_STREAMS_PER_CLIENT):
            sock, answered = open_stream(port, path)
            held.append(sock)
            assert answered.status == 200
        sock, refused = open_stream(port, path)
        held.append(sock)
        assert refused.status == 503
        assert refused.headers["retry-after"] == "1"
        detail = refused.json()["error" if face == "firebase" else "detail"]
        assert "too many open streams: this client has 2 open already" in detail
        sock, answered = open_stream(port, path, "127.0.0.2")
        held.append(sock)
        assert answered.status == 200
        if face == "native":
            assert open_streams_metric(faces.native.url) == MAX_STREAMS
        sock, refused = open_stream(port, path, "127.0.0.6")
        held.append(sock)
        assert refused.status == 503
        detail = refused.json()["error" if face == "firebase" else "detail"]
        assert "the server has 3 open already" in detail
        # Ordinary requests are answered all along.
        assert requests.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code in (200, 404)
        held.pop(0).close()  # one stream's client goes: noticed at the stream's next write
        deadline = time.monotonic() + 5
        while True:
            sock, answered = open_stream(port, path, "127.0.0.6")
            held.append(sock)
            if answered.status == 200:
                break
            assert time.monotonic() < deadline, "the gone stream's place never came back"
            time.sleep(0.2)
    finally:
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()


def raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- a flood (item 2's "done when") ---------------------------------------------------------------

FLOOD = {"silent": 1000, "half head": 1000, "stalled body": 700, "stream": 300}
FLOOD_STREAMS = 50  # per worker: the 300 stream requests go past it


@pytest.mark.slow
def test_a_flood_of_idle_and_stalled_connections_leaves_everyone_else_answered(
    redis_server: RedisServer,
) -> None:
    """3,000 connections from one client (127.0.0.2): silent, half a request head, a body that
    never comes, streams past the cap. Meanwhile another client's /_health, GET and PUT are
    answered within 1 s, and its new stream is refused at once (503). Before: past ~2,060
    connections the server stopped accepting, /_health included."""
    raise_open_files()
    server = Served(
        ["--redis-url", redis_server.url],
        {
            "THINGSTASH_WORKERS": "2",
            "THINGSTASH_KEY_PREFIX": "flood",
            "THINGSTASH_BODY_TIMEOUT": "60",
            "THINGSTASH_HEADER_TIMEOUT": "60",
            "THINGSTASH_MAX_STREAMS": str(FLOOD_STREAMS),
            "THINGSTASH_MAX_STREAMS_PER_CLIENT": "1000",
            "THINGSTASH_MAX_BODIES": "600",
            "THINGSTASH_MAX_BODIES_PER_CLIENT": "400",
        },
    ).start()
    held: dict[str, list[socket.socket]] = {kind: [] for kind in FLOOD}
    try:
        sends = {
            "silent": b"",
            "half head": b"GET /flood/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half",
            "stalled body": request_head(
                "PUT", "/flood/body", Content_Type="application/json", Content_Length="100"
            )
            + b'{"a":',
            "stream": request_head("GET", "/flood/watched", Accept="text/event-stream"),
        }
        started = time.monotonic()
        for kind, count in FLOOD.items():
            for _ in range(count):
                sock = connect(server.port, "127.0.0.2")
                if sends[kind]:
                    sock.sendall(sends[kind])
                held[kind].append(sock)
        print(f"3,000 connections opened in {time.monotonic() - started:.1f} s")
        statuses = [answer_within(sock, 10, complete=False).status for sock in held["stream"]]
        assert statuses.count(200) == 2 * FLOOD_STREAMS, statuses  # the cap, in each worker
        assert statuses.count(503) == len(statuses) - 2 * FLOOD_STREAMS

        slowest: dict[str, float] = {"health": 0, "get": 0, "put": 0, "stream": 0}
        with requests.Session() as session:
            url = server.url
            calls = {
                "health": lambda n: session.get(f"{url}/_health", timeout=1),
                "put": lambda n: session.put(f"{url}/flood/quick", json={"n": n}, timeout=1),
                "get": lambda n: session.get(f"{url}/flood/quick", timeout=1),
            }
            for n in range(10):
                for name, call in calls.items():
                    begun = time.perf_counter()
                    response = call(n)
                    slowest[name] = max(slowest[name], time.perf_counter() - begun)
                    assert response.status_code in (200, 201), (name, response.text)
                begun = time.perf_counter()
                sock, refused = open_stream(server.port, "/flood/watched")
                sock.close()
                slowest["stream"] = max(slowest["stream"], time.perf_counter() - begun)
                assert refused.status == 503
                assert refused.headers["retry-after"] == "1"
        print({name: f"{seconds * 1000:.0f} ms" for name, seconds in slowest.items()})
        assert all(seconds < 1 for seconds in slowest.values()), slowest
        # The flood was held all along: none of its idle or stalled connections was answered or
        # closed (a stalled request head, a body that never comes: their timeouts are 60 s).
        idle = held["silent"] + held["half head"] + held["stalled body"]
        assert readable(idle, 0) == []
    finally:
        for socks in held.values():
            for sock in socks:
                sock.close()
        server.stop()
