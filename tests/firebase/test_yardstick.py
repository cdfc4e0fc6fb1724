"""The rules yardstick (`../shared/rules-yardstick`: 309 cases recorded against live Firebase)
run by its own runner against `thingstash serve --firebase-port`, two workers, on one Redis and
on the cluster: every case passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from ..support.clusters import LocalCluster
from ..support.fbserve import start_firebase
from ..support.servers import RedisServer

pytestmark = pytest.mark.cluster

YARDSTICK = Path(__file__).resolve().parents[3] / "shared" / "rules-yardstick"


def test_every_recorded_case_passes(
    redis_server: RedisServer | LocalCluster, redis_client: redis.Redis
) -> None:
    assert (YARDSTICK / "run_yardstick.py").is_file(), f"the yardstick lies beside us: {YARDSTICK}"
    cases = sorted(str(path) for path in YARDSTICK.glob("*.jsonl"))
    assert len(cases) == 3
    served = start_firebase(redis_server.url, env={"THINGSTASH_WORKERS": "2"})
    try:
        run = subprocess.run(
            [sys.executable, str(YARDSTICK / "run_yardstick.py"), "--base", served.url, *cases],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        served.native.stop()
    assert run.stdout.strip().splitlines()[-1] == "309 passed, 0 failed", run.stdout[-4000:]
