"""Issue 21, item 1, in a real browser: a page on another site sends every kind of request a
browser sends without asking first (fetch in no-cors mode, form posts, beacons; text/plain,
form-urlencoded, multipart and no Content-Type; method overrides in the query string) to both
faces of an open `thingstash serve --firebase-port`, and nothing changes; a page on a loopback
origin, which the policy allows, still writes.

Debian's Chromium (`make browser`), driven by Selenium as test_console.py does. The pages come
from a small HTTP server of the test's own, reached as http://evil.test:PORT (Chromium maps the
name to 127.0.0.1: a site that is not loopback, as a page on the internet is) and as
http://localhost:PORT (a loopback origin).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import redis
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from ..support.fbserve import FirebaseServed, start_firebase
from ..support.servers import RedisServer
from .test_console import CHROMEDRIVER, CHROMIUM, FLAGS
from .test_cross_site import stored

pytestmark = pytest.mark.slow

ATTACK = """<!doctype html><meta charset="utf-8"><title>working</title><body><script>
const N = "http://127.0.0.1:%(native)d", F = "http://127.0.0.1:%(firebase)d";
const doc = '{"v": 666, "evil": true}';
const targets = [
  [N + "/_import", '{"path": "seed/a", "thing": {"v": 666}}\\n{"path": "evil/x", "thing": {}}'],
  [N + "/seed/", doc],
  [N + "/evil/", doc],
  [N + "/seed/a", doc],
  [F + "/.json?x-http-method-override=DELETE", ""],
  [F + "/.json?x-http-method-override=PUT", '{"evil": 1}'],
  [F + "/.json?x-http-method-override=PATCH", '{"seed": null, "evil": 1}'],
  [F + "/seed/a.json?x-http-method-override=PUT", doc],
  [F + "/seed/a.json?x-http-method-override=DELETE", ""],
  [F + "/evil.json", doc],
  [F + "/.settings/rules.json?x-http-method-override=PUT", '{"rules": {".read": true}}'],
];
// Each body a page may send without a preflight: [Content-Type header, body].
function bodies(text) {
  const form = new FormData();
  form.append("x", text);
  return [
    [{"Content-Type": "text/plain"}, text],
    [{"Content-Type": "application/x-www-form-urlencoded"}, text],
    [{}, form],                 // multipart/form-data
    [{}, new Blob([text])],     // no Content-Type at all
  ];
}
// A form's fields that make its text/plain body the JSON text itself: {... "x": "="}.
function fields(text) {
  if (!text.endsWith("}")) return [["a", "b"]];
  return [[text.slice(0, -1) + ', "x": "', '"}']];
}
let sent = 0;
const settled = [];
for (const [url, text] of targets) {
  for (const [headers, body] of bodies(text)) {
    sent++;
    settled.push(fetch(url, {method: "POST", mode: "no-cors", headers, body}).catch(() => {}));
  }
  for (const enctype of ["text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data"]) {
    sent++;
    const frame = document.createElement("iframe");
    frame.name = "f" + sent;
    document.body.appendChild(frame);
    const form = document.createElement("form");
    form.method = "POST";
    form.action = url;
    form.enctype = enctype;
    form.target = frame.name;
    for (const [name, value] of fields(text)) {
      const input = document.createElement("input");
      input.name = name;
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    settled.push(new Promise((done) => { frame.onload = done; setTimeout(done, 10000); }));
    form.submit();
  }
  sent += 2;
  navigator.sendBeacon(url, text);              // text/plain;charset=UTF-8
  navigator.sendBeacon(url, new Blob([text]));  // no Content-Type
}
Promise.all(settled).then(() => { document.title = "sent " + sent; });
</script>
"""

ALLOWED = """<!doctype html><meta charset="utf-8"><title>working</title><script>
const N = "http://127.0.0.1:%(native)d", F = "http://127.0.0.1:%(firebase)d";
Promise.all([
  fetch(N + "/allowed/cors", {method: "PUT", headers: {"Content-Type": "application/json"},
                              body: '{"from": "localhost"}'}).then((r) => r.status),
  fetch(F + "/allowed/fb.json?x-http-method-override=PUT", {
    method: "POST", mode: "no-cors",
    headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: '{"n": 1}',
  }).then(() => "sent"),
]).then((answers) => { document.title = "done " + answers.join(" "); },
        (error) => { document.title = "failed " + error; });
</script>
"""


class Pages(ThreadingHTTPServer):
    pages: dict[str, bytes]


class _Page(BaseHTTPRequestHandler):
    server: Pages

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        page = self.server.pages.get(self.path)
        self.send_response(200 if page else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page or b"")))
        self.end_headers()
        self.wfile.write(page or b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[FirebaseServed]:
    served = start_firebase(redis_server.url)
    yield served
    served.native.stop()


@pytest.fixture(scope="module")
def pages(pair: FirebaseServed) -> Iterator[int]:
    """The pages' server, on a free loopback port: /attack and /allowed."""
    server = Pages(("127.0.0.1", 0), _Page)
    ports = {"native": pair.native.port, "firebase": pair.port}
    server.pages = {
        "/attack": (ATTACK % ports).encode(),
        "/allowed": (ALLOWED % ports).encode(),
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        *FLAGS,
        # evil.test is a site of its own on 127.0.0.1; kept on http as a page's server would be.
        "--host-resolver-rules=MAP evil.test 127.0.0.1",
        "--disable-features=HttpsUpgrades",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def from_browser(pair: FirebaseServed) -> list[dict[str, Any]]:
    """The access log lines of both faces (one process writes them) of the attacking page's
    requests: the browser's, but the loopback page's (under /allowed)."""
    lines = []
    for text in pair.native.output().splitlines():
        if text.startswith("{") and '"request_id"' in text:
            line = json.loads(text)
            if "Chrome" in (line.get("user_agent") or "") and "/allowed" not in line["path"]:
                lines.append(line)
    return lines


def test_a_page_on_another_site_changes_nothing(
    browser: WebDriver, pages: int, pair: FirebaseServed, redis_client: redis.Redis
) -> None:
    for path, thing in (("seed/a", {"v": 1}), ("seed/b", {"v": 2})):
        assert httpx.put(f"{pair.native.url}/{path}", json=thing, timeout=10).status_code == 201
    before = stored(redis_client)
    assert from_browser(pair) == []

    browser.get(f"http://evil.test:{pages}/attack")
    title = WebDriverWait(browser, 60, poll_frequency=0.2).until(
        lambda d: d.title if d.title.startswith("sent ") else None
    )
    sent = int(title.split()[1])
    assert sent == 11 * 9  # targets x (4 fetches + 3 forms + 2 beacons)
    # Beacons are not awaited by the page: wait for every request to reach the server.
    deadline = time.monotonic() + 30
    while len(from_browser(pair)) < sent and time.monotonic() < deadline:
        time.sleep(0.1)
    requests = from_browser(pair)
    assert len(requests) == sent, f"{len(requests)} of {sent} requests reached the server"
    statuses = {(r["method"], r["path"], r["status"]) for r in requests if r["status"] != 403}
    assert not statuses, f"answered other than 403: {sorted(statuses)}"

    assert stored(redis_client) == before
    assert httpx.get(f"{pair.native.url}/seed/a", timeout=10).json()["v"] == 1
    everything = httpx.get(f"{pair.url}/.json", timeout=10).json()
    assert everything == {"seed": {"a": {"v": 1}, "b": {"v": 2}}}


def test_a_page_on_a_loopback_origin_still_writes(
    browser: WebDriver, pages: int, pair: FirebaseServed, redis_client: redis.Redis
) -> None:
    browser.get(f"http://localhost:{pages}/allowed")
    title = WebDriverWait(browser, 30, poll_frequency=0.2).until(
        lambda d: d.title if d.title != "working" else None
    )
    assert title == "done 201 sent", title
    deadline = time.monotonic() + 10
    while httpx.get(f"{pair.url}/allowed/fb.json", timeout=10).json() is None:
        assert time.monotonic() < deadline, "the Firebase write never landed"
        time.sleep(0.1)
    assert httpx.get(f"{pair.url}/allowed.json", timeout=10).json() == {
        "cors": {"from": "localhost"},
        "fb": {"n": 1},
    }
