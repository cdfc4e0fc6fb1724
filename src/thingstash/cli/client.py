"""The client side of the `thingstash` command: get, put, patch, rm, ls, watch, query, export,
import and bench against a running server, over HTTP only.

Exit codes: 0 success, 1 not found (404), 2 usage (bad arguments or bad JSON given), 3 any other
HTTP error (the problem's title and detail go to stderr), 4 the server cannot be reached.
Output is pretty on a terminal and raw JSON (one document per line) when piped.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import click

from thingstash.client.http import DEFAULT_URL, Client, ClientError, Event
from thingstash.core import documents, exportlines
from thingstash.core.documents import BadDocument

P = ParamSpec("P")
R = TypeVar("R")

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 not found, 2 usage, 3 other HTTP error, 4 server unreachable."
)


def _server_options(func: Callable[P, R]) -> Callable[P, R]:
    """--url and --key, shared by every client command (also from the environment)."""
    func = click.option(
        "--key",
        envvar="THINGSTASH_KEY",
        help="API key, sent as Authorization: Bearer (env THINGSTASH_KEY).",
    )(func)
    return click.option(
        "--url",
        envvar="THINGSTASH_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="The server (env THINGSTASH_URL).",
    )(func)


def _body_options(func: Callable[P, R]) -> Callable[P, R]:
    """[JSON] and --ttl, shared by the commands that send a thing (put, patch)."""
    func = click.option("--ttl", type=click.IntRange(min=1), help="Lifetime in seconds.")(func)
    return click.argument("json_", metavar="[JSON]", required=False)(func)


def _exits_cleanly(func: Callable[P, R]) -> Callable[P, R]:
    """Report a failed request on stderr and end with its exit code, no traceback."""

    @wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ClientError as error:
            click.echo(f"thingstash: {error}", err=True)
            sys.exit(error.exit_code)

    return run


def _to_terminal() -> bool:
    return sys.stdout.isatty()


def _print_json(raw: bytes) -> None:
    """Pretty (indented) on a terminal; exactly the bytes received, one line, when piped."""
    if _to_terminal():
        value = documents.loads(raw)
        click.echo(json.dumps(value, indent=2, ensure_ascii=False))
    else:
        sys.stdout.buffer.write(raw.rstrip(b"\n") + b"\n")
        sys.stdout.flush()


def _read_json(given: str | None) -> bytes:
    """The JSON to send: the argument, @file, or standard input (no argument, or `-`)."""
    if given is None or given == "-":
        if given is None and sys.stdin.isatty():
            raise click.UsageError("give the JSON as an argument, as @FILE, or on stdin")
        raw = sys.stdin.buffer.read()
    elif given.startswith("@"):
        try:
            with open(given[1:], "rb") as file:
                raw = file.read()
        except OSError as error:
            raise click.UsageError(f"cannot read {given[1:]}: {error.strerror}") from None
    else:
        raw = given.encode("utf-8")
    try:
        value = documents.loads(raw)
    except BadDocument as error:
        raise click.UsageError(error.detail) from None
    if not isinstance(value, dict):
        raise click.UsageError("a thing is a JSON object: {...}")
    return raw


def _client(url: str, key: str | None, **kwargs: Any) -> Client:
    return Client(url, key, **kwargs)


@click.command()
@click.argument("path")
@_server_options
@_exits_cleanly
def get(path: str, url: str, key: str | None) -> None:
    """Print the thing at PATH (a folder's listing if PATH ends in /)."""
    with _client(url, key) as client:
        _print_json(client.get(path).content)


@click.command()
@click.argument("path")
@_body_options
@_server_options
@_exits_cleanly
def put(path: str, json_: str | None, ttl: int | None, url: str, key: str | None) -> None:
    """Store JSON at PATH, replacing what was there. JSON is an argument, @FILE or stdin.
    A PATH ending in / creates a new thing in that folder with a server-made ID."""
    body = _read_json(json_)
    with _client(url, key) as client:
        _print_json(client.put(path, body, ttl).content)


@click.command()
@click.argument("path")
@_body_options
@_server_options
@_exits_cleanly
def patch(path: str, json_: str | None, ttl: int | None, url: str, key: str | None) -> None:
    """Merge JSON (RFC 7396 merge patch) into the thing at PATH."""
    body = _read_json(json_)
    with _client(url, key) as client:
        _print_json(client.patch(path, body, ttl).content)


@click.command()
@click.argument("path")
@click.option("-r", "--recursive", is_flag=True, help="Delete a folder and all below it.")
@_server_options
@_exits_cleanly
def rm(path: str, recursive: bool, url: str, key: str | None) -> None:
    """Delete the thing at PATH (a folder, ending in /, with --recursive)."""
    with _client(url, key) as client:
        response = client.delete(path, recursive)
        if response.content:
            _print_json(response.content)


@click.command()
@click.argument("path", required=False, default="")
@_server_options
@_exits_cleanly
def ls(path: str, url: str, key: str | None) -> None:
    """List what is directly in the folder PATH (the top level without PATH).

    On a terminal: sub-folders, then things with their remaining ttl. Piped: each listing
    page as the server sent it, one JSON document per line."""
    with _client(url, key) as client:
        for page in client.list_pages(path):
            if not _to_terminal():
                click.echo(documents.dumps(page).decode())
                continue
            for folder in page.get("folders", []):
                click.secho(folder, fg="blue", bold=True)
            for thing in page.get("things", []):
                click.echo(f"{thing['path']}  ttl={thing.get('ttl')}")


def _event_line(event: Event) -> str:
    data = event.data if isinstance(event.data, dict) else {"data": event.data}
    if not _to_terminal():
        return documents.dumps({"id": event.id, "event": event.event, **data}).decode()
    thing = data.get("thing")
    shown = "" if thing is None else " " + documents.dumps(thing).decode()
    stamp = time.strftime("%H:%M:%S")
    return f"{stamp} {event.event:<6} {data.get('path', '')}{shown}"


@click.command()
@click.argument("path")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--last-event-id", help="Resume after this event ID.")
@_server_options
@_exits_cleanly
def watch(
    path: str, count: int | None, last_event_id: str | None, url: str, key: str | None
) -> None:
    """Print one line per change to the thing or folder (ending in /) at PATH, live.

    After a dropped connection it reconnects and resumes where it stopped (Last-Event-ID).
    Piped, each line is a JSON object: {"id", "event", "path", "thing"}."""
    seen = 0
    with _client(url, key) as client:
        try:
            for event in client.watch(path, last_event_id):
                click.echo(_event_line(event))
                seen += 1
                if count is not None and seen >= count:
                    return
        except KeyboardInterrupt:
            return


def _query_line(answer: dict[str, Any]) -> str:
    if not _to_terminal():
        return documents.dumps(answer).decode()
    if "count" in answer:
        return str(answer["count"])
    rows = [
        f"{thing['rank']:>6}  {thing['path']}  {documents.dumps(thing['key']).decode()}"
        for thing in answer.get("things", [])
    ]
    return "\n".join(rows) if rows else "(nothing)"


@click.command()
@click.argument("folder")
@click.option("--order-by", "order_by", help="The field: `score`, `stats/level`, `$name`, ...")
@click.option("--desc", is_flag=True, help="Highest first.")
@click.option("--limit", type=click.IntRange(1, 1000), help="Things per page (default 100).")
@click.option("--start-at", help="JSON: the first value (inclusive), e.g. 10 or '\"b\"'.")
@click.option("--end-at", help="JSON: the last value (inclusive).")
@click.option("--count", is_flag=True, help="Print how many (in the range) instead.")
@click.option("--watch", is_flag=True, help="Print the answer again whenever it changes.")
@_server_options
@_exits_cleanly
def query(
    folder: str,
    order_by: str | None,
    desc: bool,
    limit: int | None,
    start_at: str | None,
    end_at: str | None,
    count: bool,
    watch: bool,
    url: str,
    key: str | None,
) -> None:
    """Ask the things directly in FOLDER in the order of a field: rank, path, value.

    Piped, each answer is printed as the server sent it, one JSON document per line."""
    if order_by is None and not count:
        raise click.UsageError("give --order-by FIELD (or --count)")
    params: dict[str, str] = {}
    for name, value in (
        ("order_by", order_by),
        ("limit", None if limit is None else str(limit)),
        ("start_at", start_at),
        ("end_at", end_at),
    ):
        if value is not None:
            params[name] = value
    if desc:
        params["desc"] = "true"
    if count:
        params["count"] = "true"
    folder = folder.strip("/") + "/" if folder.strip("/") else ""
    with _client(url, key) as client:
        if not watch:
            answer = client.request("GET", folder, params=params).content
            click.echo(_query_line(documents.loads(answer)))
            return
        try:
            for event in client.watch(folder, params=params):
                if event.event == "query":
                    if _to_terminal():
                        click.echo(f"-- {time.strftime('%H:%M:%S')}")
                    click.echo(_query_line(event.data))
        except KeyboardInterrupt:
            return


@click.command("export")
@click.argument("prefix", required=False, default="")
@_server_options
@_exits_cleanly
def export_(prefix: str, url: str, key: str | None) -> None:
    """Write every thing below PREFIX as JSON Lines: {"path", "thing", "ttl"}."""
    out = sys.stdout.buffer
    exported = 0
    with _client(url, key) as client:
        for record in client.walk(prefix):
            out.write(documents.dumps(record) + b"\n")
            exported += 1
    out.flush()
    if sys.stderr.isatty():
        click.echo(f"exported {exported} things", err=True)


@click.command("import")
@click.argument("file", type=click.File("rb"), default="-")
@click.option(
    "--workers",
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Connections for a server without POST /_import (one PUT per thing).",
)
@_server_options
@_exits_cleanly
def import_(file: Any, workers: int, url: str, key: str | None) -> None:
    """Store the things of an export (JSON Lines from FILE or stdin), each with its ttl.

    Every line is checked first (nothing is sent if one is bad), then they go in batches to
    POST /_import (one PUT per thing on a server without it). Idempotent: importing the same
    lines twice leaves the same things."""
    lines = _import_lines(file)
    with _client(url, key, connections=workers) as client:
        if sys.stderr.isatty():
            with click.progressbar(length=len(lines), label="importing", file=sys.stderr) as bar:
                failures = _import(client, lines, workers, bar.update)
        else:
            failures = _import(client, lines, workers, None)
    for where, error in failures[:10]:
        click.echo(f"thingstash: {where}: {error}", err=True)
    if failures:
        click.echo(
            f"thingstash: {len(failures)} batches or things of {len(lines)} lines failed to import",
            err=True,
        )
        sys.exit(max(error.exit_code for _, error in failures))
    if sys.stderr.isatty():
        click.echo(f"imported {len(lines)} things", err=True)


def _import_lines(file: Any) -> list[tuple[int, bytes]]:
    """The file's non-blank lines, (number, JSON), each checked as the server will check it
    (exportlines.py); a bad one ends the command (exit 2) before anything is sent."""
    lines = []
    for number, raw in enumerate(file, 1):
        line = raw.strip()
        if not line:
            continue
        try:
            # The server's own ttl limit is unknown here: it checks that one itself.
            exportlines.parse_line(line, number, 1, _NO_TTL_LIMIT)
        except exportlines.BadLine as error:
            raise click.UsageError(str(error)) from None
        lines.append((number, line))
    return lines


_NO_TTL_LIMIT = 2**53


def _import(
    client: Client,
    lines: list[tuple[int, bytes]],
    workers: int,
    progress: Callable[[int], None] | None,
) -> list[tuple[str, ClientError]]:
    failures = client.import_lines(lines, on_done=progress)
    if failures is not None:
        return failures
    # An older server without POST /_import: one PUT per thing.
    records = [documents.loads(line) for _, line in lines]
    done = (lambda: progress(1)) if progress is not None else None
    return client.put_many(records, workers, done)


@click.command()
@click.option("--things", default=2000, show_default=True, type=click.IntRange(min=1))
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 256))
@_server_options
@_exits_cleanly
def bench(things: int, concurrency: int, url: str, key: str | None) -> None:
    """Create THINGS things over HTTP and report the elapsed time and the rate.

    They go under bench/<run>/ with a ttl of 10 minutes and are deleted afterwards."""
    run = uuid.uuid4().hex[:8]
    records = [
        {"path": f"bench/{run}/{i}", "thing": {"value": i, "sensor": "bench"}, "ttl": 600}
        for i in range(things)
    ]
    with _client(url, key, connections=concurrency) as client:
        client.get("_health")  # fail fast (exit 4) before timing anything
        started = time.perf_counter()
        failures = client.put_many(records, concurrency)
        elapsed = time.perf_counter() - started
        try:
            client.delete(f"bench/{run}/", recursive=True)
        except ClientError:
            pass  # an older server without recursive delete: the ttl cleans up
    created = things - len(failures)
    click.echo(
        f"created {created} things in {elapsed:.2f} s: {created / elapsed:,.0f} things/s "
        f"({concurrency} connection{'s' if concurrency > 1 else ''} to {url})"
    )
    if failures:
        path, error = failures[0]
        click.echo(f"thingstash: {len(failures)} failed, first {path}: {error}", err=True)
        sys.exit(error.exit_code)


COMMANDS = (get, put, patch, rm, ls, watch, query, export_, import_, bench)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
