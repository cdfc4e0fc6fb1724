"""Where a request's time goes, without HTTP or load-generator noise.

Calls each app's WSGI callable in-process against an embedded Redis and prints the CPU time per
request (this process only: Redis runs apart), for thingstash, the naive floor (floor.py) and
the lean floor (leanfloor.py); `--profile NAME` then runs cProfile on that scenario and prints
the top functions by cumulative and own time.

    .venv/bin/python bench/hotpath.py [--requests 20000] [--profile GET|PUT|PATCH|increment|listing]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from thingstash.serve.embedded import EmbeddedRedis

BODY = b'{"value":21.5,"unit":"C","sensor":"kitchen","battery":87,"ok":true}'
CASES = {
    "GET": ("GET", "/bench/get/{i}", None, None),
    "PUT": ("PUT", "/bench/put/{i}", BODY, "application/json"),
    "PATCH": ("PATCH", "/bench/get/{i}", b'{"value":22}', "application/merge-patch+json"),
    "increment": (
        "PATCH",
        "/bench/get/{i}",
        b'{"count":{".sv":{"increment":1}}}',
        "application/json",
    ),
    "listing": ("GET", "/bench/get/", None, None),
}


def environ(method: str, path: str, body: bytes | None, content_type: str | None) -> dict:
    env = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_USER_AGENT": "wrk",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body is not None:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = content_type
    return env


def runner(app: Callable, case: str, count: int) -> Callable[[], None]:
    method, pattern, body, content_type = CASES[case]
    statuses: dict[str, int] = {}

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    def run() -> None:
        for i in range(count):
            env = environ(method, pattern.format(i=i % 1000), body, content_type)
            for _ in app(env, start_response):
                pass
        bad = {s: n for s, n in statuses.items() if not s.startswith("20")}
        if bad:
            raise SystemExit(f"{case}: unexpected answers {bad}")

    return run


def cpu_us(run: Callable[[], None], count: int) -> float:
    started = time.process_time()
    run()
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--profile", default="", help="cProfile this case")
    parser.add_argument("--only", default="", help="run just this case (for py-spy, callgrind)")
    parser.add_argument("--app", default="thingstash", help="with --only: thingstash, floor, lean")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        redis = EmbeddedRedis(Path(tmp) / "redis")
        os.environ["REDIS_URL"] = os.environ["THINGSTASH_REDIS_URL"] = redis.start()
        try:
            sys.path.insert(0, str(Path(__file__).parent))
            import floor
            import leanfloor

            from thingstash.web.app import create_app

            ours = create_app()
            for i in range(1000):  # things to read, patch and list
                for app in (ours, floor.app, leanfloor.app):
                    env = environ("PUT", f"/bench/get/{i}", BODY, "application/json")
                    list(app(env, lambda *a: None))
            if args.only:
                apps = {"thingstash": ours, "floor": floor.app, "lean": leanfloor.app}
                runner(apps[args.app], args.only, args.requests)()
                return
            for case in ("GET", "PUT"):
                measured = {}
                for name, app in (("floor", floor.app), ("lean", leanfloor.app), ("ours", ours)):
                    runner(app, case, 2000)()  # warm up
                    measured[name] = cpu_us(runner(app, case, args.requests), args.requests)
                print(
                    f"{case:9} thingstash {measured['ours']:6.0f} us  "
                    f"floor {measured['floor']:6.0f} us  lean floor {measured['lean']:6.0f} us CPU"
                )
            for case in ("PATCH", "increment", "listing"):
                ours_us = cpu_us(runner(ours, case, args.requests // 10), args.requests // 10)
                print(f"{case:9} thingstash {ours_us:6.0f} us")
            if args.profile:
                profiler = cProfile.Profile()
                run = runner(ours, args.profile, args.requests)
                profiler.runcall(run)
                stats = pstats.Stats(profiler)
                stats.sort_stats("cumulative").print_stats(45)
                stats.sort_stats("tottime").print_stats(30)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
