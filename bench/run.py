"""`make bench`: thingstash against the original prototype and the one-round-trip floor.

Everything runs on loopback: one embedded Redis (the same configuration `thingstash serve` gives
users: unix socket, append-only file synced every second) in a temp dir, shared by the three
apps, which are started one at a time so that they never compete for the CPU:

- thingstash, started with `thingstash serve --redis-url ...` (granian, the settings users get);
- the prototype (bench/prototype.py) under gunicorn with 4 sync workers, as it was deployed;
- the naive floor (bench/floor.py), a Flask view making one redis-py call per request, on
  `thingstash.serve.server` with the settings of `thingstash serve`;
- the lean floor (bench/leanfloor.py), the same view with its one call on a raw per-thread
  redis-py connection (no pool, no retry wrapper): what the stack itself can do.

Each scenario is a wrk run (`-t1`, Lua scripts in bench/wrk/) at 16 and 64 connections. The apps
take turns: a round runs every app once, and the table shows, for each app and scenario, the
median of its runs over the rounds (3 by default), so that a burst of other load on a shared
machine moves one run of one app, not the ratios. Then Redis memory per thing is measured for
100,000 things of three sizes, stored through thingstash's storage and as plain strings. Run
`python bench/run.py --help` for the knobs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import memory

from thingstash.serve.embedded import EmbeddedRedis

# The repository root, for tests/support/ports.py (free ports, shared with the tests).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.ports import free_port  # noqa: E402

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
WRK_DIR = HERE / "wrk"
CONNECTIONS = (16, 64)
SPREAD = 1000  # paths a PUT, GET, PATCH or increment run cycles through
LISTED = 100  # things in the listed folder: one default page
CREATED = 2000  # the prototype's "create 2,000 things"
# A small sensor reading, flat so that the prototype's hash-per-thing can hold it too.
BODY = '{"value":21.5,"unit":"C","sensor":"kitchen","battery":87,"ok":true}'


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    prefix: str
    method: str = "GET"
    prefill: str | None = None  # the folder to fill with SPREAD things first, if any
    stop_after: int | None = None


SCENARIOS = {
    "PUT": Scenario("PUT", "put.lua", "/bench/put/", "PUT"),
    "GET": Scenario("GET", "get.lua", "/bench/get/", prefill="/bench/get/"),
    "PATCH": Scenario("PATCH", "patch.lua", "/bench/patch/", "PATCH", prefill="/bench/patch/"),
    "increment": Scenario(
        "increment", "increment.lua", "/bench/count/", "PATCH", prefill="/bench/count/"
    ),
    "listing": Scenario("listing", "list.lua", "/bench/list/", prefill="/bench/list/"),
    "create 2000": Scenario("create 2000", "create.lua", "/bench/new/", "PUT", stop_after=CREATED),
}
APPS = {
    "thingstash": list(SCENARIOS),
    "prototype": ["PUT", "GET", "create 2000"],
    "floor": ["PUT", "GET", "create 2000"],
    "lean": ["PUT", "GET", "create 2000"],
}
REFERENCES = ("prototype", "floor", "lean")
TITLES = {"prototype": "prototype", "floor": "naive floor", "lean": "lean floor"}


@dataclass(frozen=True)
class Result:
    rate: float  # requests a second
    p50_ms: float
    p99_ms: float
    bad: int
    cpu_us: dict[str, float]  # CPU per request of the app, Redis and wrk


def median(runs: list[Result]) -> Result:
    """Each figure's median over the runs (so a figure may come from another run than the
    next one); failed requests are added up, so that any shows."""
    return Result(
        statistics.median(run.rate for run in runs),
        statistics.median(run.p50_ms for run in runs),
        statistics.median(run.p99_ms for run in runs),
        sum(run.bad for run in runs),
        {name: statistics.median(run.cpu_us[name] for run in runs) for name in runs[0].cpu_us},
    )


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by a process and all its live descendants."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    total = 0.0
    for pid, seconds in used.items():
        walk = pid
        while walk > 1 and walk != root:
            walk = parents.get(walk, 0)
        if walk == root:
            total += seconds
    return total


def app_command(app: str, port: int, redis_url: str) -> tuple[list[str], dict[str, str]]:
    """How each app is served; thingstash exactly as a user starts it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THINGSTASH_")}
    env["REDIS_URL"] = redis_url
    if app == "thingstash":
        command = [str(BIN / "thingstash"), "serve", "--port", str(port)]
        return [*command, "--redis-url", redis_url], env
    env["PYTHONPATH"] = str(HERE)
    env["THINGSTASH_FRONT"] = "threads"  # the reference apps are WSGI apps, served on threads
    if app == "prototype":
        command = [str(BIN / "gunicorn"), "-w", "4", "-b", f"127.0.0.1:{port}", "prototype:app"]
        return command + ["--log-level", "warning", "--chdir", str(HERE)], env
    module = "leanfloor" if app == "lean" else "floor"
    run_floor = (
        f"from thingstash.serve import server; server.run('127.0.0.1', {port}, '{module}:app')"
    )
    return [sys.executable, "-c", run_floor], env


@contextmanager
def serving(app: str, redis_url: str) -> Iterator[tuple[int, int]]:
    port = free_port()
    command, env = app_command(app, port, redis_url)
    # The app's output (thingstash writes an access log line per request) goes to a file, as a
    # deployment's would, not to this terminal.
    log = tempfile.NamedTemporaryFile("w+", prefix=f"bench-{app}-", suffix=".log")
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"{app} did not start: {' '.join(command)}\n{log.read()[-2000:]}")
            time.sleep(0.1)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGINT if app != "prototype" else signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def answers(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/bench/ready")
        connection.getresponse().read()
        return True
    except OSError:
        return False


def prefill(port: int, folder: str, count: int, body: str) -> None:
    """PUT `count` things into `folder` through the app itself, on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(count):
        connection.request("PUT", f"{folder}{i}", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status not in (200, 201):
            raise SystemExit(f"prefill of {folder}{i} answered {response.status}")
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.close()


def wrk(
    target: tuple[int, int],
    redis_pid: int,
    scenario: Scenario,
    connections: int,
    seconds: float,
    prefix: str,
) -> Result:
    port, app_pid = target
    script = (WRK_DIR / "common.lua").read_text() + (WRK_DIR / scenario.script).read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    env = dict(os.environ)
    env.update(
        BENCH_PREFIX=prefix,
        BENCH_KEYS=str(LISTED if scenario.name == "listing" else SPREAD),
        BENCH_BODY=BODY,
        BENCH_STOP_AFTER=str(scenario.stop_after or 0),
    )
    duration = "60s" if scenario.stop_after else f"{seconds:.0f}s"  # create stops by itself
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency", "-s", file.name]
    before = (cpu_seconds(app_pid), cpu_seconds(redis_pid), _children_cpu())
    process = subprocess.Popen(
        [*command, f"http://127.0.0.1:{port}"], env=env, stdout=subprocess.PIPE, text=True
    )
    lines = []
    try:
        assert process.stdout is not None
        for text in process.stdout:
            lines.append(text)
            if text.strip() == "CREATED":  # create.lua reached its count: end the run now
                process.send_signal(signal.SIGINT)
        process.wait()
    finally:
        os.unlink(file.name)
    after = (cpu_seconds(app_pid), cpu_seconds(redis_pid), _children_cpu())
    line = next((x for x in lines if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {''.join(lines)}")
    data = json.loads(line[6:])
    return Result(
        data["requests"] / (data["duration_us"] / 1e6),
        data["p50_us"] / 1000,
        data["p99_us"] / 1000,
        data["bad_status"] + data["socket_errors"],
        {
            name: (later - earlier) / max(1, data["requests"]) * 1e6
            for name, earlier, later in zip(("app", "redis", "wrk"), before, after, strict=True)
        },
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_app(
    app: str, redis: EmbeddedRedis, seconds: float, only: set[str] | None, label: str = ""
) -> dict[tuple[str, int], Result]:
    results: dict[tuple[str, int], Result] = {}
    names = [n for n in APPS[app] if not only or n in only]
    if not names:
        return results
    assert redis.process is not None
    redis_pid = redis.process.pid
    with serving(app, redis.url) as target:
        for name in names:
            if SCENARIOS[name].prefill:
                count = LISTED if name == "listing" else SPREAD
                prefill(target[0], SCENARIOS[name].prefill or "", count, BODY)
        # Warm up every worker (imports, connection pools) before anything is measured.
        warm_up = SCENARIOS["GET" if "GET" in names else "PUT"]
        wrk(target, redis_pid, warm_up, 64, 2, warm_up.prefix)
        for name in names:
            scenario = SCENARIOS[name]
            for connections in CONNECTIONS:
                prefix = scenario.prefix
                if scenario.stop_after:
                    prefix = f"{prefix}{uuid.uuid4().hex[:8]}/"
                result = wrk(target, redis_pid, scenario, connections, seconds, prefix)
                results[(name, connections)] = result
                print(
                    f"  {label}{app:<10} {name:<12} c={connections:<3} {result.rate:8.0f} req/s "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  CPU/request: "
                    + ", ".join(f"{k} {v:.0f} us" for k, v in result.cpu_us.items())
                    + (f"  ({result.bad} errors)" if result.bad else ""),
                    flush=True,
                )
    return results


def cell(result: Result | None) -> str:
    if result is None:
        return f"{'':>24}"
    text = f"{result.rate:7.0f} {result.p50_ms:6.1f} {result.p99_ms:7.1f}"
    return text + ("!" if result.bad else " ")


def ratio(ours: Result | None, theirs: Result | None) -> str:
    if ours is None or theirs is None:
        return f"{'':>7}"
    return f"{ours.rate / theirs.rate:6.2f}x"


def print_table(results: dict[str, dict[tuple[str, int], Result]]) -> None:
    ours = results.get("thingstash", {})
    references = [(name, results.get(name, {})) for name in REFERENCES]
    head = "req/s  p50ms   p99ms "
    print()
    print(
        f"{'':17}| {'thingstash':^24}| "
        + "".join(f"{TITLES[name]:^24}| " for name, _ in references)
        + " | ".join(f"{'vs ' + name[:5]:>7} " for name, _ in references)
    )
    print(f"{'scenario':12} conns| {head}  | " + f"{head}  | " * len(references) + "(req/s)")
    print("-" * (43 + 35 * len(references)))
    for name in SCENARIOS:
        for connections in CONNECTIONS:
            key = (name, connections)
            if not any(key in r for r in (ours, *(ref for _, ref in references))):
                continue
            print(
                f"{name:12} {connections:5}| {cell(ours.get(key))}| "
                + "".join(f"{cell(ref.get(key))}| " for _, ref in references)
                + " | ".join(f"{ratio(ours.get(key), ref.get(key))} " for _, ref in references)
            )
    print("(! = some requests failed or errored; see the lines above)")
    print_targets(ours, dict(references))


def print_targets(
    ours: dict[tuple[str, int], Result], refs: dict[str, dict[tuple[str, int], Result]]
) -> None:
    """The issue's targets, each with what this run measured."""

    def rate(results: dict[tuple[str, int], Result], key: tuple[str, int]) -> float | None:
        found = results.get(key)
        return found.rate if found else None

    def line(text: str, value: float | None, goal: float, unit: str = "x") -> None:
        if value is None:
            return
        verdict = "met" if value >= goal else f"missed by {(1 - value / goal) * 100:.0f}%"
        print(f"  {text:52} {value:6.2f}{unit} (target {goal}{unit}: {verdict})")

    def share(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    print("\ntargets:")
    for scenario in ("PUT", "GET"):
        key = (scenario, 16)
        line(
            f"{scenario} c=16 vs naive floor", share(rate(ours, key), rate(refs["floor"], key)), 1.0
        )
        line(f"{scenario} c=16 vs lean floor", share(rate(ours, key), rate(refs["lean"], key)), 0.9)
        line(
            f"{scenario} c=16 vs prototype",
            share(rate(ours, key), rate(refs["prototype"], key)),
            2.5,
        )
    for scenario in ("PATCH", "increment"):
        key = (scenario, 16)
        line(f"{scenario} c=16 vs PUT", share(rate(ours, key), rate(ours, ("PUT", 16))), 0.6)
    line(
        "listing page (100) c=16 vs GET",
        share(rate(ours, ("listing", 16)), rate(ours, ("GET", 16))),
        0.5,
    )
    for scenario in ("PUT", "GET"):
        mine, naive = ours.get((scenario, 64)), refs["floor"].get((scenario, 64))
        if mine and naive:
            # Lower is better: shown as the floor's p99 over ours, so that >= 1.0 is met.
            line(
                f"{scenario} c=64 p99 (floor {naive.p99_ms:.1f} / ours {mine.p99_ms:.1f} ms)",
                naive.p99_ms / mine.p99_ms,
                1.0,
            )


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5, help="length of each wrk run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each app, taking turns (medians shown)"
    )
    parser.add_argument(
        "--apps", default="prototype,floor,lean,thingstash", help="which apps to run"
    )
    parser.add_argument("--only", default="", help="scenarios to run, comma separated")
    parser.add_argument("--things", type=int, default=100_000, help="things per memory sample")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make bench` installs it (apt-get install wrk)")
    only = {n.strip() for n in args.only.split(",") if n.strip()} or None
    print(
        f"machine: {machine()}; wrk -t1, {args.seconds:.0f} s a run; "
        f"medians of {args.rounds} rounds, the apps taking turns",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="thingstash-bench-") as tmp:
        redis = EmbeddedRedis(Path(tmp) / "redis")
        url = redis.start()
        try:
            apps = args.apps.split(",")
            runs: dict[str, dict[tuple[str, int], list[Result]]] = {app: {} for app in apps}
            for number in range(1, args.rounds + 1):
                for app in apps:
                    memory.flush(url)
                    measured = bench_app(app, redis, args.seconds, only, f"{number}/{args.rounds} ")
                    for key, result in measured.items():
                        runs[app].setdefault(key, []).append(result)
            print_table(
                {
                    app: {key: median(found) for key, found in by_key.items()}
                    for app, by_key in runs.items()
                }
            )
            if not args.no_memory:
                memory.flush(url)
                memory.report(url, args.things)
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
