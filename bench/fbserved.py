"""What the Firebase benchmarks share: `thingstash serve --firebase-port` over a Redis, and the
paths of a Firebase stream's `put` events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.ports import free_port  # noqa: E402


@contextmanager
def both_faces(url: str, workers: int | None = None) -> Iterator[tuple[int, str, str]]:
    """Serve the store at `url` (`workers` processes a face, or the default): the server's pid,
    the native face's URL and the Firebase face's, once both answer; stopped at exit."""
    native_port, firebase_port = free_port(), free_port()
    env = {**os.environ, **({"THINGSTASH_WORKERS": str(workers)} if workers else {})}
    server = subprocess.Popen(
        [sys.executable, "-m", "thingstash", "serve", "--port", str(native_port)]
        + ["--firebase-port", str(firebase_port), "--redis-url", url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    native, fb = f"http://127.0.0.1:{native_port}", f"http://127.0.0.1:{firebase_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{fb}/.json?shallow=true", timeout=1)
                httpx.get(f"{native}/_health", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield server.pid, native, fb
    finally:
        server.terminate()
        server.wait(30)


def put_paths(url: str, timeout: float) -> Iterator[str]:
    """The `path` of each `put` event of a Firebase stream of `url` (`.../loc.json`)."""
    headers = {"Accept": "text/event-stream"}
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
        buffer = b""
        for chunk in response.iter_raw():
            buffer += chunk
            while b"\n\n" in buffer:
                raw, buffer = buffer.split(b"\n\n", 1)
                for line in raw.split(b"\n"):
                    if line.startswith(b"data: {"):
                        yield orjson.loads(line[6:])["path"]
