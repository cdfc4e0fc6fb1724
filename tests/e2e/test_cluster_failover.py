"""A primary of a real cluster is SIGKILLed while clients write (or watch): its replica takes
over, the service answers again without a restart, replicated writes are not lost, and a watch
goes on (with a reset when the feed's own node failed over)."""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path

import pytest
import requests
from redis.cluster import key_slot

from thingstash.core.config import Settings
from thingstash.web.app import create_app

from ..support.clusters import LocalCluster
from ..support.servers import Served, close_app

pytestmark = pytest.mark.slow

BEFORE = 60
RECOVERY_BUDGET_S = 40  # bound on the whole failover phase; it takes a few seconds


def _replicated(cluster: LocalCluster, primaries: list[int] | None = None) -> bool:
    """Every replica has every write its primary has (the replication offsets agree)."""
    for port in primaries or cluster.primary_ports():
        info = cluster.node(port).info("replication")
        offset = info["master_repl_offset"]
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        if not replicas or any(r["offset"] < offset for r in replicas):
            return False
    return True


def _slots_of(cluster: LocalCluster, port: int) -> set[int]:
    slots: set[int] = set()
    for start, end, primary, *_ in cluster.node(port).execute_command("CLUSTER SLOTS"):
        if primary[1] == port:
            slots.update(range(start, end + 1))
    return slots


def test_service_survives_the_sigkill_of_a_primary(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    cluster.start()
    app = create_app(Settings(redis_url=cluster.url))
    store = app.extensions["thingstash.store"]
    client = app.test_client()
    try:
        for i in range(BEFORE):
            assert client.put(f"/before/{i}", json={"i": i}).status_code == 201
        deadline = time.monotonic() + 10
        while not _replicated(cluster):
            assert time.monotonic() < deadline, "replicas did not catch up"
            time.sleep(0.05)

        victim = cluster.primary_ports()[0]
        victim_slots = _slots_of(cluster, victim)
        answers: list[tuple[str, int, float]] = []
        stop = threading.Event()

        def write() -> None:
            writer = app.test_client()
            i = 0
            while not stop.is_set() and i < 100_000:
                path = f"during/{i}"
                status = writer.put("/" + path, json={"i": i}).status_code
                answers.append((path, status, time.monotonic()))
                i += 1

        thread = threading.Thread(target=write)
        thread.start()
        try:
            time.sleep(0.3)
            killed_at = time.monotonic()
            cluster.kill(victim)
            # Until the writer has had a run of successes after the kill, within a bound.
            deadline = killed_at + RECOVERY_BUDGET_S
            while time.monotonic() < deadline:
                after = [status for _, status, at in answers if at > killed_at]
                if len(after) >= 20 and all(s in (200, 201) for s in after[-20:]):
                    break
                time.sleep(0.1)
        finally:
            stop.set()
            thread.join(30)

        statuses = {status for _, status, _ in answers}
        assert statuses <= {200, 201, 503}, statuses  # never a 500 during the failover
        after = [status for _, status, at in answers if at > killed_at]
        assert after[-20:] == [201] * 20, "the service did not answer again after the failover"
        cluster.wait_ok()

        # Every write the replicas had before the kill is there.
        for i in range(BEFORE):
            got = client.get(f"/before/{i}")
            assert got.status_code == 200 and got.json["i"] == i
        # Acknowledged writes made after that point may be lost, but only on the killed
        # primary's slots (asynchronous replication); everything else is there.
        acknowledged = [path for path, status, _ in answers if status == 201]
        missing = [path for path in acknowledged if client.get("/" + path).status_code != 200]
        for path in missing:
            assert key_slot(store.thing_key(path).encode()) in victim_slots, path
        # Listings and the feed still work on the new topology.
        listed = client.get("/before/?limit=1000").json["things"]
        assert len(listed) == BEFORE
    finally:
        close_app(app)  # its live threads too: they would go on trying a stopped cluster
        cluster.stop()


def _owner(cluster: LocalCluster, key: bytes) -> int:
    """The port of the primary that holds `key` now."""
    slot = key_slot(key)
    for port in cluster.primary_ports():
        if slot in _slots_of(cluster, port):
            return port
    raise AssertionError(f"no primary holds slot {slot}")


class EventSource:
    """A watch as a browser's EventSource keeps it: read events as they come; when the stream
    ends or cannot be opened, wait a little and reconnect with the last id as Last-Event-ID."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.connections = 0
        self.last_id: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            headers = {"Accept": "text/event-stream"}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            try:
                with requests.get(self.url, headers=headers, stream=True, timeout=(2, 10)) as r:
                    if r.status_code == 200:
                        self.connections += 1
                        self._read(r)
            except requests.RequestException:
                pass
            self._stop.wait(0.2)

    def _read(self, response: requests.Response) -> None:
        fields: dict[str, str] = {}
        for line in response.iter_lines(decode_unicode=True):
            if self._stop.is_set():
                return
            if line == "":
                if "event" in fields:
                    self.last_id = fields.get("id", self.last_id)
                    self.events.put(fields)
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value

    def next(self, timeout: float = 20) -> tuple[str, str, int | None]:
        """The next event: (kind, path, the thing's "v" or None)."""
        fields = self.events.get(timeout=timeout)
        data = json.loads(fields["data"])
        thing = data.get("thing")
        return fields["event"], data["path"], thing["v"] if thing else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _put_until_accepted(url: str, v: int) -> None:
    """PUT as a client would during a failover: retry the 503s, within a bound."""
    deadline = time.monotonic() + RECOVERY_BUDGET_S
    while time.monotonic() < deadline:
        status = requests.put(url, json={"v": v}, timeout=10).status_code
        if status == 200 or status == 201:
            return
        assert status == 503, status
        time.sleep(0.1)
    raise AssertionError(f"{url} was not accepted again after the failover")


def test_a_watch_through_failovers(tmp_path: Path) -> None:
    """A folder is watched through `thingstash serve` while first the primary holding a
    watched thing, then the one holding the change feed, is SIGKILLed."""
    cluster = LocalCluster(tmp_path)
    cluster.start()
    service = Served(
        ["--redis-url", cluster.url], {"THINGSTASH_WORKERS": "1", "THINGSTASH_KEEPALIVE": "1"}
    ).start()
    watch = EventSource(service.url + "/w/")
    try:
        feed_node = _owner(cluster, b"ts:feed")
        path = next(
            f"w/t{i}" for i in range(100) if _owner(cluster, b"ts:t:{w/t%d}" % i) != feed_node
        )
        thing = service.url + "/" + path
        assert requests.put(thing, json={"v": 0}, timeout=10).status_code == 201
        assert watch.next() == ("put", path, 0)
        deadline = time.monotonic() + 10
        while not _replicated(cluster):
            assert time.monotonic() < deadline, "replicas did not catch up"
            time.sleep(0.05)

        # The thing's primary dies: its writes answer 503 until its replica takes over. The
        # feed is elsewhere, so the open stream goes on and shows the next write.
        cluster.kill(_owner(cluster, b"ts:t:{%s}" % path.encode()))
        _put_until_accepted(thing, 1)
        assert watch.next() == ("put", path, 1)
        assert watch.connections == 1

        # The feed's primary dies. Events appended just before may not have reached its
        # replica, so whoever watched across the failover is told with a reset: the open
        # stream waits for the store, then gets one (a client that reconnected with
        # Last-Event-ID would get it too).
        deadline = time.monotonic() + 10
        while not _replicated(cluster, [feed_node]):
            assert time.monotonic() < deadline, "replicas did not catch up"
            time.sleep(0.05)
        cluster.kill(feed_node)
        _put_until_accepted(thing, 2)
        events = [watch.next(RECOVERY_BUDGET_S)]
        while events[-1][0] != "reset":
            events.append(watch.next(RECOVERY_BUDGET_S))
        # After the reset the watch goes on, without a restart of the service.
        assert requests.put(thing, json={"v": 3}, timeout=10).status_code == 200
        assert requests.delete(thing, timeout=10).status_code == 204
        while events[-1][0] != "delete":
            events.append(watch.next())
        # The write made during the failover shows before or after the reset, depending on
        # whether its event came before the reset's position (a reset says: read the state).
        rest = [event for event in events if event != ("put", path, 2)]
        assert rest == [("reset", "w/", None), ("put", path, 3), ("delete", path, None)]
        assert len(events) - len(rest) <= 1
        assert watch.events.empty()
        assert watch.connections == 1  # one open stream all along: it waited for the store
    finally:
        watch.close()
        service.stop()
        cluster.stop()
