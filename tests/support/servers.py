"""The processes the tests run and stop: a Redis-compatible server on a loopback port
(`RedisServer`), `thingstash serve` as users run it (`Served`), and the helpers that close an
app or name the installed command. The fixtures over them are in tests/conftest.py."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
from flask import Flask

from thingstash.serve.embedded import scratch_command
from thingstash.web import ratelimit

from .ports import free_port


class RedisServer:
    """A real server process on a loopback port, for one test session (or one test)."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            scratch_command(self.port, self.directory, *self.args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def close_app(app: Flask) -> None:
    """Stop what an app started: its live hub, rate limiter connections and store."""
    ratelimit.close(app)
    app.extensions["thingstash.live"].close()
    app.extensions["thingstash.store"].close()


class Served:
    """`thingstash serve` running as a subprocess, as users run it."""

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Served:
        env = {**os.environ, **self.env}
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "thingstash", "serve", "--port", str(self.port), *self.args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.output()
                self.log.close()
                raise RuntimeError(output)
            try:  # ready once a worker answers, not merely once the port is bound
                with urllib.request.urlopen(f"{self.url}/_health", timeout=1):
                    return self
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise TimeoutError(f"thingstash serve did not start: {self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(30)
        self.log.close()
        return code


def thingstash_command() -> str:
    """The installed `thingstash` script beside this Python (the venv's)."""
    return str(Path(sys.executable).with_name("thingstash"))
