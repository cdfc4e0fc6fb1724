"""Benchmark (not a test): what the rules cost. GET and PUT of a thing by a user signed in with
an RS256 ID token (verified against a JWKS served locally), under the README's to-do rules,
against the same requests with an admin key (which no rule judges), and a user's denied GET
(another user's list), in one run: `thingstash serve` (default workers) on a scratch Redis, wrk
at 16 connections, the three kinds taking turns round by round; medians and ratios.
Target (issue #23): a user's rate at least 0.8x the admin key's; a denial no dearer than an
allowed read.

    .venv/bin/python bench/rules.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
# The repository root, for tests/support (free ports, the JWKS server and keys of the tests).
sys.path.insert(0, str(HERE.parent))

from listing import start_server  # noqa: E402 (bench/ is the script's own folder)
from tests.support.ports import free_port  # noqa: E402
from tests.support.tokens import AUDIENCE, ISSUER, JwksServer, claims, rsa_key  # noqa: E402

RULES = (HERE.parent / "docs" / "todo-rules.json").read_text()
ITEM = '{"title":"Buy milk","done":false}'
KEYS = 1000


def serve(redis_url: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "thingstash", "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--redis-url", redis_url],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/_health", timeout=1)
            return server, url
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                server.terminate()
                raise
            time.sleep(0.1)


def admin_key(redis_url: str) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "thingstash", "keys", "create", "--scope", "admin"]
        + ["--redis-url", redis_url],
        capture_output=True,
        text=True,
        check=True,
    )
    return next(word for word in made.stdout.split() if word.startswith("tsk_"))


def wrk(url: str, script: str, prefix: str, auth: str, seconds: float) -> tuple[float, int]:
    """(requests/s, answers that were not the ones expected) of one wrk run."""
    text = (HERE / "wrk" / "common.lua").read_text() + (HERE / "wrk" / script).read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(text)
    env = {**os.environ, "BENCH_PREFIX": prefix, "BENCH_KEYS": str(KEYS)}
    env.update(BENCH_BODY=ITEM, BENCH_AUTH=auth)
    try:
        run = subprocess.run(
            ["wrk", "-t1", "-c16", f"-d{seconds:.0f}s", "-s", file.name, url],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(file.name)
    line = next(x for x in run.stdout.splitlines() if x.startswith("BENCH "))
    data = json.loads(line[6:])
    return data["requests"] / (data["duration_us"] / 1e6), data["bad_status"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    signer = rsa_key("bench")
    provider = JwksServer(keys=[signer])
    provider.start()
    directory = tempfile.mkdtemp(prefix="thingstash-bench-rules-")
    redis_port = free_port()
    redis_server = start_server(redis_port, directory)
    redis_url = f"redis://127.0.0.1:{redis_port}"
    key = admin_key(redis_url)
    env = {
        "THINGSTASH_AUTH_JWKS_URL": provider.url,
        "THINGSTASH_AUTH_ISSUER": ISSUER,
        "THINGSTASH_AUTH_AUDIENCE": AUDIENCE,
    }
    server, url = serve(redis_url, env)
    token = signer.sign(claims(sub="ada", exp=int(time.time()) + 24 * 3600))
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as admin:
            admin.put("/_rules", content=RULES).raise_for_status()
            for i in range(KEYS):
                admin.put(f"/todos/ada/{i}", content=ITEM).raise_for_status()
                admin.put(f"/todos/bob/{i}", content=ITEM).raise_for_status()
        kinds = {
            "GET, admin key": ("get.lua", "/todos/ada/", key),
            "GET, user token": ("get.lua", "/todos/ada/", token),
            "GET, user token, denied": ("get.lua", "/todos/bob/", token),
            "PUT, admin key": ("put.lua", "/todos/ada/", key),
            "PUT, user token": ("put.lua", "/todos/ada/", token),
        }
        rates: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(args.rounds):
            for name, (script, prefix, auth) in kinds.items():
                rate, bad = wrk(url, script, prefix, auth, args.seconds)
                rates[name].append(rate)
                print(f"  {name}: {rate:,.0f} req/s ({bad} answers not 2xx)", file=sys.stderr)
        median = {name: statistics.median(values) for name, values in rates.items()}
        print(f"\nrules bench: medians of {args.rounds} rounds of {args.seconds:.0f} s, wrk -c16")
        print("| request | req/s | vs admin key |")
        print("|---|---|---|")
        for name, rate in median.items():
            base = median[name.split(",")[0] + ", admin key"]
            print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")
    finally:
        server.terminate()
        server.wait(10)
        redis_server.terminate()
        redis_server.wait(10)
        provider.stop()


if __name__ == "__main__":
    main()
