"""The Firebase face's listener (`thingstash serve --firebase-port`): a second granian server in
a process of its own, on the same host and store, with its own workers
(thingstash.workers.firebase). `serve` starts it beside the native server and stops it with it.

Run as `python -m thingstash.serve.firebase HOST PORT` by `start` below, never by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from thingstash.serve import server
from thingstash.serve.lifetime import die_with_parent

TARGET = "thingstash.workers.firebase"
STOP_SECONDS = server.SHUTDOWN_GRACE_SECONDS + 5


def start(host: str, port: int) -> subprocess.Popen[bytes]:
    """Start the Firebase listener with this process's environment (the settings `serve` put
    there), as a child that dies with this process."""
    return subprocess.Popen(
        [sys.executable, "-m", "thingstash.serve.firebase", host, str(port), str(os.getpid())]
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(host: str, port: int, parent: int) -> None:
    die_with_parent(signal.SIGTERM, parent)
    # Its workers are this process's children: they die with it (thingstash.workers.firebase).
    os.environ["THINGSTASH_SERVE_PID"] = str(os.getpid())
    server.run(host, port, target=TARGET)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
