"""/_openapi.json against a running `thingstash serve`: schemathesis generates requests for
every documented operation; no answer may be a 5xx, and every answer must match the document
(status, content type, headers, body schema). Bounded in examples to run in about a minute."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.support.servers import RedisServer, Served

pytestmark = pytest.mark.slow

HOOKS = Path(__file__).parents[1] / "support" / "schemathesis_hooks.py"  # /_import's JSON Lines
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_headers_conformance,response_schema_conformance"
)


@pytest.fixture
def own_server(redis_server: RedisServer, redis_client: redis.Redis) -> Iterator[Served]:
    """A server of its own, in its own namespace: schemathesis creates API keys (POST /_keys),
    which would close the shared server's store to the tests after this one."""
    server = Served(
        ["--redis-url", redis_server.url], env={"THINGSTASH_KEY_PREFIX": "schemathesis"}
    ).start()
    yield server
    server.stop()


def test_every_operation_matches_the_document(own_server: Served, tmp_path: Path) -> None:
    """schemathesis's own runner (examples, coverage and fuzzing phases, 20 examples per
    operation); its report is printed when it fails."""
    served = own_server
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{served.url}/_openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "20",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--warnings",
            "off",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]


def test_document_is_openapi_3_1_and_covers_the_contract(served: Served) -> None:
    document = requests.get(f"{served.url}/_openapi.json", timeout=10).json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path in ("/", "/{folder}/", "/{path}", "/_health", "/_openapi.json", "/_docs"):
        assert path in paths
    assert set(paths["/{path}"]) >= {"get", "head", "put", "patch", "delete"}
    assert set(paths["/{folder}/"]) >= {"get", "post", "delete"}
    assert "text/event-stream" in paths["/{path}"]["get"]["responses"]["200"]["content"]


def test_docs_page_is_served_with_its_assets_from_the_package(served: Served) -> None:
    page = requests.get(f"{served.url}/_docs", timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["Content-Type"]
    assert "/_openapi.json" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from a CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        got = requests.get(f"{served.url}/_docs/{asset}", timeout=10)
        assert got.status_code == 200 and len(got.content) > 10_000
    assert requests.get(f"{served.url}/_docs/nothing.js", timeout=10).status_code == 404
