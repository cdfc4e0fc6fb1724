"""Benchmark (not a test): ordinary requests next to hundreds of open watch streams.

Starts `thingstash serve` (embedded Redis, default workers and threads) on a free port, then
measures PUT and GET with wrk (throughput and p99) three ways: no streams; N streams watching
a folder nobody writes to (the cost of holding them); N streams watching the folder the PUTs
write to (the cost of fanning every write out to every stream). The streams are read by one
thread here, which counts the events they get.

    .venv/bin/python bench/streams.py [--streams 500] [--seconds 10] [--connections 16]

Needs `wrk` (apt-get install -y wrk).
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

# The repository root, for tests/support/ports.py (free ports, shared with the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.ports import free_port  # noqa: E402

PUT_SCRIPT = """
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"temperature": 21.5, "unit": "C", "sensor": "kitchen"}'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/bench/hot/t" .. (counter % 1000))
end
"""


class Streams:
    """N open SSE connections, drained by one thread that counts the events received."""

    def __init__(self, port: int, path: str, count: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.events = 0
        self.closed = 0
        self.sockets = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(
                f"GET /{path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            head = b""
            while b": watching" not in head:
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("stream refused: " + head.decode(errors="replace"))
                head += chunk
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
            self.sockets.append(sock)
        self._stop = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop:
            for key, _ in self.selector.select(0.2):
                try:
                    data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                if not data:
                    self.selector.unregister(key.fileobj)
                    self.closed += 1
                    continue
                self.events += data.count(b"\nevent: ")

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        for sock in self.sockets:
            sock.close()


def wrk(url: str, seconds: int, connections: int, script: str | None = None) -> dict[str, float]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        if script:
            lua.write(script)
            lua.flush()
            args += ["-s", lua.name]
        output = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rate,
        "p99_ms": float(p99.group(1)) * scale,  # type: ignore[union-attr]
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


def measure(base: str, seconds: int, connections: int) -> dict[str, dict[str, float]]:
    return {
        "GET": wrk(base + "/bench/one", seconds, connections),
        "PUT": wrk(base, seconds, connections, PUT_SCRIPT),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    options = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = tempfile.mkdtemp(prefix="thingstash-bench-")
    server = subprocess.Popen(
        [sys.executable, "-m", "thingstash", "serve", "--port", str(port), "--data-dir", data_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/_health", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        request = urllib.request.Request(
            base + "/bench/one",
            data=b'{"v": 1}',
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request).close()
        results = {"no streams": measure(base, options.seconds, options.connections)}
        for label, path in [("idle", "bench/quiet/"), ("fan-out", "bench/hot/")]:
            started = time.monotonic()
            streams = Streams(port, path, options.streams)
            opened = time.monotonic() - started
            got = measure(base, options.seconds, options.connections)
            time.sleep(1)
            name = f"{options.streams} streams ({label})"
            results[name] = got
            puts = got["PUT"]["rps"] * options.seconds
            print(
                f"{name}: opened in {opened:.1f} s; events received {streams.events} "
                f"(~{puts:.0f} PUTs x {options.streams if label == 'fan-out' else 0} streams); "
                f"streams closed by the server {streams.closed}",
                flush=True,
            )
            streams.close()
            time.sleep(2)
        print(f"\n{'':32} {'GET req/s':>10} {'GET p99':>9} {'PUT req/s':>10} {'PUT p99':>9}")
        for name, got in results.items():
            print(
                f"{name:32} {got['GET']['rps']:10.0f} {got['GET']['p99_ms']:7.1f}ms "
                f"{got['PUT']['rps']:10.0f} {got['PUT']['p99_ms']:7.1f}ms"
                + (" (errors)" if got["GET"]["non2xx"] or got["PUT"]["non2xx"] else "")
            )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        subprocess.run(["rm", "-rf", data_dir], check=False)


if __name__ == "__main__":
    os.environ.pop("REDIS_URL", None)
    main()
