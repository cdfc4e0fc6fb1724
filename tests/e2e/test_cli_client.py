"""The command-line client against a real `thingstash serve`: piping, JSON sources, exit codes,
watch resuming after a dropped connection, export/import with TTLs, bench."""

from __future__ import annotations

import http.server
import json
import math
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.ports import free_port
from tests.support.servers import RedisServer, Served, thingstash_command
from thingstash.client.http import Client, ClientError
from thingstash.core import documents, keys
from thingstash.store import open_store

pytestmark = pytest.mark.slow


def run(server_url: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the client as a user's script would: output piped, so raw JSON."""
    return subprocess.run(
        [thingstash_command(), *args, "--url", server_url],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def url(served: Served, redis_client: redis.Redis) -> str:
    return served.url  # redis_client: every test starts from an empty store


def test_put_then_get_pipes_the_exact_json(url: str) -> None:
    body = '{"big": 123456789012345678901234567890, "s": "42", "f": 1.5, "u": "\u00e9t\u00e9"}'
    put = run(url, "put", "sensors/kitchen", body)
    assert put.returncode == 0, put.stderr
    got = run(url, "get", "sensors/kitchen")
    assert got.returncode == 0
    assert got.stdout.count(b"\n") == 1  # raw: one line when piped
    thing = json.loads(got.stdout)
    assert thing["big"] == 123456789012345678901234567890
    assert thing["s"] == "42" and thing["f"] == 1.5 and thing["u"] == "\u00e9t\u00e9"
    assert 0 < thing["ttl"] <= 31104000


def test_json_from_a_file_and_from_stdin(url: str, tmp_path: Path) -> None:
    source = tmp_path / "thing.json"
    source.write_text('{"from": "file"}')
    assert run(url, "put", "a", f"@{source}").returncode == 0
    assert run(url, "put", "b", stdin=b'{"from": "stdin"}').returncode == 0
    patched = run(url, "patch", "b", "-", "--ttl", "100", stdin=b'{"more": true}')
    assert patched.returncode == 0
    assert json.loads(run(url, "get", "a").stdout)["from"] == "file"
    b = json.loads(run(url, "get", "b").stdout)
    assert b["from"] == "stdin" and b["more"] is True and b["ttl"] <= 100


def test_exit_codes(url: str) -> None:
    missing = run(url, "get", "nothing/here")
    assert missing.returncode == 1
    assert b"thing doesn't exist" in missing.stderr
    assert run(url, "patch", "nothing/here", "{}").returncode == 1
    assert run(url, "rm", "nothing/here").returncode == 1

    assert run(url, "put", "x", "{not json").returncode == 2
    assert run(url, "put", "x", "[1, 2]").returncode == 2
    assert run(url, "put", "x", "@/no/such/file").returncode == 2
    assert run(url, "get", "x").returncode == 1  # nothing was sent

    too_long = run(url, "put", "x", "{}", "--ttl", "999999999999")
    assert too_long.returncode == 3
    assert b"ttl" in too_long.stderr

    unreachable = run(f"http://127.0.0.1:{free_port()}", "get", "x")
    assert unreachable.returncode == 4


def test_ls_and_rm(url: str) -> None:
    for path in ("f/a", "f/b", "f/sub/c"):
        assert run(url, "put", path, "{}").returncode == 0
    listing = run(url, "ls", "f")
    assert listing.returncode == 0
    page = json.loads(listing.stdout)
    assert [t["path"] for t in page["things"]] == ["f/a", "f/b"]
    assert page["folders"] == ["f/sub/"]
    assert run(url, "rm", "f/a").returncode == 0
    assert run(url, "get", "f/a").returncode == 1


def test_put_to_a_folder_creates_a_new_id(url: str) -> None:
    made = run(url, "put", "log/", '{"n": 1}')
    assert made.returncode == 0
    path = json.loads(made.stdout)["path"]
    assert path.startswith("log/")
    assert json.loads(run(url, "get", path).stdout)["n"] == 1


def test_export_import_round_trip_keeps_things_and_ttls(
    url: str, redis_client: redis.Redis
) -> None:
    with Client(url) as client:  # seed in-process: 60 subprocesses would only cost time
        for i in range(60):
            path = f"exp/{'deep/er/' if i % 3 == 0 else ''}{i}"
            body = {"i": i, "big": 2**70 + i, "name": f"n\u00e9{i}", "list": [i, None]}
            client.put(path, json.dumps(body).encode(), 1000 + i * 10)
        client.put("other", b"{}")

    exported = run(url, "export", "exp")
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(records) == 60
    assert all(set(r) == {"path", "thing", "ttl"} for r in records)
    assert all("ttl" not in r["thing"] and "last_updated" not in r["thing"] for r in records)

    redis_client.flushall()
    started = time.monotonic()
    imported = run(url, "import", stdin=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    again = run(url, "import", stdin=exported.stdout)  # idempotent
    assert again.returncode == 0

    back = {r["path"]: r for r in map(json.loads, run(url, "export").stdout.splitlines())}
    # TTLs count down while the import and the second export run (slowly, on a loaded machine).
    slack = math.ceil(time.monotonic() - started) + 1
    assert set(back) == {r["path"] for r in records}
    for record in records:
        assert back[record["path"]]["thing"] == record["thing"]
        assert 0 <= record["ttl"] - back[record["path"]]["ttl"] <= slack


def test_the_largest_thing_and_one_grown_past_the_limit_export_and_import_byte_for_byte(
    url: str, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    limit = 1024 * 1024  # the served store's THINGSTASH_MAX_BODY (the default)
    largest = b'{"pad":"' + b"x" * (limit - 10) + b'"}'
    assert len(largest) == limit
    with Client(url) as client:
        assert client.put("rt/largest", largest, 1000).status_code == 201
        assert client.put("rt/largest2", largest, 1000).status_code == 201
        assert client.put("rt/small", b'{"a":1}', 1000).status_code == 201
        with pytest.raises(ClientError, match="413 thing too large: rt/largest: the thing would"):
            client.patch("rt/largest", b'{"more":1}')
    # A thing grown past the limit before every write was checked (PATCHes could), planted by
    # a store without the check.
    legacy = b'{"grown":"' + b"\xc3\xa9" * (limit // 2 + 1000) + b'"}'
    old = open_store(redis_server.url)
    old.max_thing_bytes = 10 * limit
    old.put("rt/legacy", legacy, 1000)
    old.close()
    stored = {p: redis_client.get(f"ts:t:{{rt/{p}}}")[16:] for p in ("largest", "legacy", "small")}
    assert stored["largest"] == largest and len(stored["legacy"]) > limit

    exported = run(url, "export", "rt")
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.count(b"\n") == 4
    redis_client.flushall()
    imported = run(url, "import", stdin=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    for path, body in stored.items():
        assert redis_client.get(f"ts:t:{{rt/{path}}}")[16:] == body, path
    assert redis_client.get("ts:t:{rt/largest2}")[16:] == largest


def test_import_refuses_bad_lines_before_writing(url: str) -> None:
    lines = b'{"path": "ok", "thing": {}, "ttl": 10}\n{"path": 1}\n'
    refused = run(url, "import", stdin=lines)
    assert refused.returncode == 2
    assert b"line 2" in refused.stderr
    assert run(url, "get", "ok").returncode == 1


def test_bench_reports_a_rate(url: str) -> None:
    result = run(url, "bench", "--things", "40")
    assert result.returncode == 0, result.stderr
    assert b"created 40 things in" in result.stdout
    assert b"things/s" in result.stdout


# -- watch resuming, against a stand-in SSE server that drops the connection -----------------


class DroppingEvents(http.server.BaseHTTPRequestHandler):
    """Sends one event per connection, then hangs up: the client must resume each time
    from the last id it saw."""

    last_event_ids: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        last = self.headers.get("Last-Event-ID")
        type(self).last_event_ids.append(last)
        number = int(last) + 1 if last else 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        data = json.dumps({"path": "w/x", "thing": {"n": number}})
        self.wfile.write(f"retry: 10\nid: {number}\nevent: put\ndata: {data}\n\n".encode())
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def dropping_server() -> Iterator[str]:
    DroppingEvents.last_event_ids = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DroppingEvents)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_watch_prints_a_line_per_event_and_resumes_after_drops(dropping_server: str) -> None:
    watched = run(dropping_server, "watch", "w/x", "--count", "3")
    assert watched.returncode == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [(e["id"], e["event"], e["thing"]["n"]) for e in lines] == [
        ("1", "put", 1),
        ("2", "put", 2),
        ("3", "put", 3),
    ]
    assert DroppingEvents.last_event_ids[:3] == [None, "1", "2"]


def test_key_option_and_unauthorized_exit_code(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    # Its own server and namespace: a key here must not close the shared server's store.
    server = Served(
        ["--redis-url", redis_server.url], env={"THINGSTASH_KEY_PREFIX": "clikeys"}
    ).start()
    try:
        # An open store makes its first key on the store itself, not over HTTP.
        store = open_store(redis_server.url, "clikeys")
        _, key = keys.create_key(store, "write")
        store.close()
        deadline = time.monotonic() + 30  # each worker notices the new key within a second
        while run(server.url, "get", "x").returncode != 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        refused = run(server.url, "put", "x", "{}")
        assert refused.returncode == 3 and b"401" in refused.stderr
        assert run(server.url, "put", "x", '{"a": 1}', "--key", key).returncode == 0
        got = run(server.url, "get", "x", "--key", key)
        assert got.returncode == 0 and json.loads(got.stdout)["a"] == 1
    finally:
        server.stop()


# -- import: batches, their limits, older servers ---------------------------------------------


def test_import_batches_fit_the_servers_body_limit(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    # A server with a small body limit, a small ttl limit and a rate limit: batches over the
    # body limit are halved until they fit, batches over the rate limit wait and are sent
    # again, and a line the server refuses is named by its line in the file.
    server = Served(
        ["--redis-url", redis_server.url],
        env={
            "THINGSTASH_MAX_BODY": "4000",
            "THINGSTASH_MAX_TTL": "1000",
            "THINGSTASH_DEFAULT_TTL": "1000",
            "THINGSTASH_RATE_LIMIT": "3/second",
        },
    ).start()
    try:
        records = [
            {"path": f"lim/{i}", "thing": {"i": i, "pad": "x" * 30}, "ttl": 900} for i in range(200)
        ]
        good = b"".join(documents.dumps(r) + b"\n" for r in records)
        assert len(good) > 4 * 4000
        records[149]["ttl"] = 5000  # fine for the client, over this server's limit
        bad = b"".join(documents.dumps(r) + b"\n" for r in records)
        refused = run(server.url, "import", stdin=bad)
        assert refused.returncode == 3
        assert b"line 150: " in refused.stderr and b"between 1 and 1000" in refused.stderr
        assert run(server.url, "get", "lim/149").returncode == 1

        imported = run(server.url, "import", stdin=good)
        assert imported.returncode == 0, imported.stderr
        # (read from Redis: an export now could meet the rate limit the import used up)
        assert len(list(redis_client.scan_iter("ts:t:{lim/*", count=1000))) == 200
    finally:
        server.stop()


class OldServer(http.server.BaseHTTPRequestHandler):
    """A server from before POST /_import: 404 for it, and a PUT per thing."""

    puts: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(404, b'{"title": "not found", "detail": "reserved", "status": 404}')

    def do_PUT(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).puts.append(f"{self.path} {body.decode()}")
        self.answer(201, body)

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_import_falls_back_to_a_put_per_thing_on_an_older_server() -> None:
    OldServer.puts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OldServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        lines = b'{"path": "a/b c", "thing": {"n": 1}, "ttl": 0}\n{"path": "d", "thing": {}}\n'
        imported = run(f"http://127.0.0.1:{server.server_address[1]}", "import", stdin=lines)
        assert imported.returncode == 0, imported.stderr
        # ttl 0 (an export's "about to expire") is sent as the 1 s a write needs.
        assert sorted(OldServer.puts) == ['/a/b%20c?ttl=1 {"n":1}', "/d {}"]
    finally:
        server.shutdown()
        server.server_close()
