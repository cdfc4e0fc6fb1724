"""Issue 21, items 1 and 9: web pages the CORS policy does not allow change nothing, on both faces
and the fast path (web/crosssite.py); the Firebase face takes JSON bodies only; HTTP/1.0
without a Host header is served by a loopback server. The browser itself is in
test_cross_site_browser.py."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from thingstash.web import auth, fastpath, live
from thingstash.web.firebase.app import create_firebase_app

from ..support.fbserve import FirebaseServed, start_firebase
from ..support.servers import RedisServer
from ..web.test_auth import bearer, make_key

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


# -- cross-site writes (item 1), in the app: both faces, the fast path included -------------------

EVIL = "https://evil.example"
LOOPBACK_PAGE = "http://localhost:5173"
PROBLEM = "application/problem+json"


@pytest.fixture
def no_presence_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # A key made outside the app closes the store at once, not within a second.
    monkeypatch.setattr(auth, "KEY_PRESENCE_SECONDS", -1.0)


@pytest.fixture
def faces(
    make_app: Callable[..., Flask],
) -> Iterator[Callable[..., tuple[FlaskClient, FlaskClient]]]:
    """`faces(**settings)`: test clients of the native face (its fast path on) and the Firebase
    face over one store, emptied, with `seed/a` in it."""
    made: list[Flask] = []

    def make(**overrides: object) -> tuple[FlaskClient, FlaskClient]:
        native = make_app(**overrides)
        assert native.extensions[fastpath.EXTENSION].on
        firebase = create_firebase_app(
            native.extensions["thingstash.settings"], native.extensions["thingstash.store"]
        )
        made.append(firebase)
        client = native.test_client()
        assert client.put("/seed/a", json=SEED).status_code in (200, 201)
        return client, firebase.test_client()

    yield make
    for firebase in made:  # its store is the native app's, which make_app closes
        live.of(firebase).close()


def stored(redis_client: redis.Redis) -> dict[bytes, bytes]:
    """Every Redis key with a dump of its value: what a refused request must leave alone (but
    the mark a worker sets once its folder-name index is built, whenever that happens)."""
    return {
        key: redis_client.dump(key) or b""
        for key in redis_client.keys("*")
        if not key.endswith(b":subfolders:ready")
    }


def native_shapes() -> list[tuple[str, str, dict[str, str], bytes]]:
    """Every way a page might change the native face: (method, url, headers, body)."""
    line = b'{"path": "seed/a", "thing": {"v": 666}}'
    json_body = b'{"v": 666}'
    shapes = []
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = {"Content-Type": content_type} if content_type else {}
        shapes += [
            ("POST", "/_import", headers, line),
            ("POST", "/seed/", headers, json_body),
            ("PUT", "/seed/a", headers, json_body),
        ]
    return [
        *shapes,
        ("POST", "/_import", {"Content-Type": "application/jsonl"}, line),
        ("PUT", "/seed/a", {"Content-Type": "application/json"}, json_body),
        ("PATCH", "/seed/a", {"Content-Type": "application/merge-patch+json"}, json_body),
        ("DELETE", "/seed/a", {}, b""),
        ("DELETE", "/seed/?recursive=true", {}, b""),
        ("POST", "/_keys", {"Content-Type": "application/json"}, b'{"scope": "admin"}'),
    ]


def firebase_shapes() -> list[tuple[str, str, dict[str, str], bytes]]:
    """Every way a page might change the Firebase face."""
    shapes = []
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = {"Content-Type": content_type} if content_type else {}
        for override in ("DELETE", "PUT", "PATCH", "GET"):
            shapes.append(("POST", f"/.json?x-http-method-override={override}", headers, b"{}"))
        shapes += [
            ("POST", "/seed.json", headers, b'{"v": 666}'),
            ("POST", "/.json", {**headers, "X-HTTP-Method-Override": "DELETE"}, b""),
        ]
    return [
        *shapes,
        ("PUT", "/seed/a.json", {"Content-Type": "application/json"}, b'{"v": 666}'),
        ("PATCH", "/.json", {"Content-Type": "application/json"}, b'{"seed": null}'),
        ("DELETE", "/.json", {}, b""),
        ("PUT", "/.settings/rules.json", {"Content-Type": "application/json"}, b'{"rules": {}}'),
    ]


def send(client: FlaskClient, shape: tuple[str, str, dict[str, str], bytes], **headers: str):  # type: ignore[no-untyped-def]
    method, url, given, body = shape
    return client.open(url, method=method, headers={**given, **headers}, data=body)


@pytest.mark.parametrize(
    "browser",
    [
        {"Origin": EVIL},
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},  # a sandboxed frame, a data: URL
        {"Origin": "http://localhost.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},  # no Origin: still a browser's
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_page_the_policy_refuses_changes_nothing(
    faces: Callable[..., tuple[FlaskClient, FlaskClient]],
    redis_client: redis.Redis,
    browser: dict[str, str],
) -> None:
    native, firebase = faces()
    before = stored(redis_client)
    for shape in native_shapes():
        refused = send(native, shape, **browser)
        assert refused.status_code == 403, (shape, refused.get_json())
        assert refused.mimetype == PROBLEM
        problem = refused.get_json()
        assert problem["title"] == "cross-site write refused"
        assert "may not change data here" in problem["detail"]
        if "Origin" in browser:
            assert browser["Origin"] in problem["detail"]
    for shape in firebase_shapes():
        refused = send(firebase, shape, **browser)
        assert refused.status_code == 403, (shape, refused.get_json())
        assert "may not change data here" in refused.get_json()["error"]
    assert stored(redis_client) == before
    assert native.get("/seed/a").get_json()["v"] == 1


def test_reads_from_any_page_are_left_to_cors(
    faces: Callable[..., tuple[FlaskClient, FlaskClient]],
) -> None:
    native, firebase = faces()
    read = native.get("/seed/a", headers={"Origin": EVIL, "Sec-Fetch-Site": "cross-site"})
    assert read.status_code == 200
    assert "Access-Control-Allow-Origin" not in read.headers  # the page cannot read it
    assert native.head("/seed/", headers={"Origin": EVIL}).status_code == 200
    preflight = native.options(
        "/seed/a", headers={"Origin": EVIL, "Access-Control-Request-Method": "PUT"}
    )
    assert preflight.status_code == 200
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert firebase.get("/seed.json", headers={"Origin": EVIL}).get_json() == {"a": SEED}


def test_pages_the_policy_allows_and_clients_that_are_no_browser_still_write(
    faces: Callable[..., tuple[FlaskClient, FlaskClient]],
) -> None:
    native, firebase = faces(allowed_hosts=("box.lan",))
    writers = [
        {},  # curl, scripts, SDKs
        {"Origin": LOOPBACK_PAGE, "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:8080"},
        {"Origin": EVIL, "Sec-Fetch-Site": "same-origin"},  # the server's own page
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://box.lan", "Host": "box.lan"},  # its own origin, no Sec-Fetch-Site
    ]
    for number, headers in enumerate(writers):
        put = native.put(f"/seed/w{number}", json={"n": number}, headers=headers)
        assert put.status_code == 201, (headers, put.get_json())
        pushed = native.post("/seed/", json={"n": number}, headers=headers)
        assert pushed.status_code == 201, (headers, pushed.get_json())
        written = firebase.post(
            f"/fb/w{number}.json?x-http-method-override=PUT", json=number, headers=headers
        )
        assert written.status_code == 200, (headers, written.get_json())
    assert firebase.get("/fb.json").get_json() == {f"w{n}": n for n in range(len(writers))}


def test_a_closed_store_allows_every_page_and_its_key_decides(
    faces: Callable[..., tuple[FlaskClient, FlaskClient]], no_presence_cache: None
) -> None:
    native, firebase = faces()
    key = make_key(native.application, "write")
    page = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"}
    assert native.put("/seed/a", json={"v": 2}, headers=page).status_code == 401
    assert native.post("/_import", data=b"", headers=page).status_code == 401
    written = native.put("/seed/a", json={"v": 2}, headers={**page, **bearer(key)})
    assert written.status_code == 200, written.get_json()
    denied = firebase.post("/.json?x-http-method-override=DELETE", headers=page)
    assert denied.status_code == 401
    assert denied.get_json() == {"error": "Permission denied"}
    deleted = firebase.post(f"/seed/a.json?x-http-method-override=DELETE&auth={key}", headers=page)
    assert deleted.status_code == 200, deleted.get_json()


def test_configured_origins_decide_whatever_the_state(
    faces: Callable[..., tuple[FlaskClient, FlaskClient]],
) -> None:
    native, firebase = faces(cors_origins="https://app.example")
    refused = native.put("/seed/a", json={"v": 2}, headers={"Origin": LOOPBACK_PAGE})
    assert refused.status_code == 403
    allowed = native.put("/seed/a", json={"v": 2}, headers={"Origin": "https://APP.example"})
    assert allowed.status_code == 200, allowed.get_json()
    assert firebase.delete("/seed.json", headers={"Origin": EVIL}).status_code == 403
    everyone, firebase_everyone = faces(cors_origins="*")
    assert everyone.put("/seed/a", json={"v": 3}, headers={"Origin": EVIL}).status_code == 200
    assert firebase_everyone.delete("/seed.json", headers={"Origin": "null"}).status_code == 200


# -- the Firebase face takes JSON bodies --------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "multipart/form-data; boundary=x", "application/xml"]
)
def test_a_firebase_body_of_another_type_is_400_and_stores_nothing(
    faces: Callable[..., tuple[FlaskClient, FlaskClient]],
    redis_client: redis.Redis,
    content_type: str,
) -> None:
    _, firebase = faces()
    before = stored(redis_client)
    for method, url in (
        ("PUT", "/seed/a.json"),
        ("POST", "/seed.json"),
        ("PATCH", "/seed.json"),
        ("POST", "/seed/a.json?x-http-method-override=PUT"),
        ("PUT", "/.settings/rules.json"),
    ):
        refused = firebase.open(
            url, method=method, data=b'{"a": {"v": 666}}', headers={"Content-Type": content_type}
        )
        assert refused.status_code == 400, (method, url)
        error = refused.get_json()["error"]
        assert "application/json" in error and content_type.split(";")[0] in error, error
    assert stored(redis_client) == before


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
        "application/x-www-form-urlencoded",  # curl -d, as Firebase's documentation uses it
    ],
)
def test_a_firebase_body_of_json_is_taken(
    faces: Callable[..., tuple[FlaskClient, FlaskClient]], content_type: str | None
) -> None:
    _, firebase = faces()
    headers = {"Content-Type": content_type} if content_type else {}
    assert firebase.put("/t/x.json", data=b'{"v": 7}', headers=headers).status_code == 200
    assert firebase.patch("/t/x.json", data=b'{"w": 8}', headers=headers).status_code == 200
    assert firebase.post("/t.json", data=b'{"p": 9}', headers=headers).status_code == 200
    values = firebase.get("/t.json").get_json()
    assert values.pop("x") == {"v": 7, "w": 8}
    assert list(values.values()) == [{"p": 9}]


# -- served: the fast path and the Firebase face as users run them ---------------------------------


def test_served_faces_refuse_cross_site_writes(pair: FirebaseServed) -> None:
    thing = f"{pair.native.url}/seed/a"
    for headers in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
        for method in ("PUT", "PATCH"):  # what the fast path answers when plain
            refused = httpx.request(method, thing, json={"v": 666}, headers=headers, timeout=10)
            assert refused.status_code == 403, (method, headers, refused.text)
            assert refused.headers["content-type"] == PROBLEM
        wiped = httpx.post(
            f"{pair.url}/.json?x-http-method-override=DELETE",
            content=b"",
            headers={"Content-Type": "text/plain", **headers},
            timeout=10,
        )
        assert wiped.status_code == 403, wiped.text
        assert "may not change data here" in wiped.json()["error"]
    assert httpx.get(thing, timeout=10).json()["v"] == 1
    assert httpx.get(f"{pair.url}/seed.json", timeout=10).json() == {"a": SEED}
    # The same write without a browser's headers lands (through the fast path).
    assert httpx.put(thing, json={"v": 2}, timeout=10).status_code == 200
