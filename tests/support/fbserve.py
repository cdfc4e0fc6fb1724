"""`thingstash serve --firebase-port` as a subprocess on the session's Redis (one Redis or the
cluster), shared by the Firebase face's test modules."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from .clusters import LocalCluster
from .ports import free_port
from .servers import RedisServer, Served


class FirebaseServed:
    """The served pair: `native` (the thingstash API) and `url`, the Firebase face."""

    def __init__(self, native: Served, port: int) -> None:
        self.native = native
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.host = f"127.0.0.1:{port}"


def start_firebase(
    redis_url: str, env: dict[str, str] | None = None, flag: bool = True
) -> FirebaseServed:
    """`serve --firebase-port` on a free port; `flag=False`: no flag, the environment's
    THINGSTASH_FIREBASE_PORT names the port."""
    env = {"THINGSTASH_WORKERS": "1", **(env or {})}
    if flag:
        port = free_port()
        args = ["--firebase-port", str(port)]
    else:
        port, args = int(env["THINGSTASH_FIREBASE_PORT"]), []
    native = Served(["--redis-url", redis_url, *args], env=env).start()
    served = FirebaseServed(native, port)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{served.url}/.json?shallow=true", timeout=2).status_code < 500:
                return served
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            native.stop()
            raise TimeoutError(f"the Firebase face did not start: {native.output()}")
        time.sleep(0.05)


@pytest.fixture(scope="session")
def firebase_server(redis_server: RedisServer | LocalCluster) -> Iterator[FirebaseServed]:
    served = start_firebase(redis_server.url)
    yield served
    served.native.stop()


@pytest.fixture
def firebase(firebase_server: FirebaseServed, redis_client: redis.Redis) -> FirebaseServed:
    """The Firebase face on an emptied store (redis_client flushes it first). A test that gave
    the store keys leaves it closed for up to a second in the server's memory (web/auth.py's
    KEY_PRESENCE_SECONDS): wait until the emptied store is seen open again."""
    deadline = time.monotonic() + 10
    while httpx.get(f"{firebase_server.url}/.json?shallow=true", timeout=5).status_code == 401:
        assert time.monotonic() < deadline, "the emptied store is still closed"
        time.sleep(0.05)
    return firebase_server
