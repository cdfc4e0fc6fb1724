"""A small HTTP client for a thingstash server: what the command-line client, export, import
and bench are built on. It speaks only the public HTTP contract (API.md), never Redis.

Errors become ClientError with an exit code that scripts can rely on (see EXIT_* below).
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import httpx_sse

from thingstash.core import documents

DEFAULT_URL = "http://127.0.0.1:8080"

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_HTTP_ERROR = 3
EXIT_CONNECTION = 4

LISTING_PAGE = 1000  # the server's maximum page: fewest round trips for export
IMPORT_BATCH_BYTES = 512 * 1024  # half the default body limit; a smaller one is met by halving
IMPORT_BATCH_LINES = 1000
IMPORT_TRIES = 5  # per batch, when the server answers 429 or 503
IMPORT_WORKERS = 3  # batches in flight: enough to keep a server's workers and Redis busy
JSON_TYPE = "application/json"
JSONL = "application/jsonl"
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 10.0


class ClientError(Exception):
    """A request that did not succeed, with the exit code the command line ends with."""

    def __init__(self, message: str, exit_code: int, status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.status = status


def quote_path(path: str) -> str:
    """Percent-encode a thing's path for a URL, keeping its `/` separators."""
    return "/" + quote(path.lstrip("/"), safe="/")


def _problem(response: httpx.Response) -> ClientError:
    """Turn a non-success response (problem+json or not) into a ClientError."""
    try:
        body = response.json()
        message = f"{body.get('title', response.reason_phrase)}: {body.get('detail', '')}"
    except ValueError:
        message = response.reason_phrase or "error"
    code = EXIT_NOT_FOUND if response.status_code == 404 else EXIT_HTTP_ERROR
    return ClientError(f"{response.status_code} {message}".rstrip(": "), code, response.status_code)


def _batches(lines: list[tuple[int, bytes]]) -> Iterator[list[tuple[int, bytes]]]:
    """Consecutive runs of lines, each at most IMPORT_BATCH_LINES and (unless one line is
    longer by itself) IMPORT_BATCH_BYTES."""
    batch: list[tuple[int, bytes]] = []
    size = 0
    for line in lines:
        if batch and (len(batch) >= IMPORT_BATCH_LINES or size + len(line[1]) > IMPORT_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += len(line[1]) + 1
    if batch:
        yield batch


def _line_span(batch: list[tuple[int, bytes]]) -> str:
    first, last = batch[0][0], batch[-1][0]
    return f"line {first}" if first == last else f"lines {first}-{last}"


def _renumbered(error: ClientError, batch: list[tuple[int, bytes]]) -> ClientError:
    """The server numbers the lines of its request: name the line of the file instead."""

    def file_line(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return f"line {batch[index][0]}" if 0 <= index < len(batch) else match.group(0)

    message = re.sub(r"line (\d+)", file_line, str(error), count=1)
    return ClientError(message, error.exit_code, error.status)


@dataclass(frozen=True)
class Event:
    """One change from a watch stream."""

    id: str
    event: str
    data: Any


class Client:
    """One connection pool to one server; safe to share between threads."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        key: str | None = None,
        timeout: float = 30.0,
        connections: int = 16,
    ) -> None:
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers=self._auth,
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; non-2xx answers and connection failures raise ClientError."""
        sent = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = content_type
        try:
            response = self.http.request(
                method, quote_path(path), content=body, params=params, headers=sent
            )
        except httpx.TransportError as error:
            raise ClientError(
                f"cannot reach {self.http.base_url}: {error}", EXIT_CONNECTION
            ) from None
        if response.status_code >= 400:
            raise _problem(response)
        return response

    # -- things ---------------------------------------------------------------------------

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def put(self, path: str, body: bytes, ttl: int | None = None) -> httpx.Response:
        params = {"ttl": str(ttl)} if ttl is not None else None
        # A path ending in / is a folder: the server gives the new thing an ID (POST).
        method = "POST" if path.endswith("/") else "PUT"
        return self.request(method, path, body, params)

    def patch(self, path: str, body: bytes, ttl: int | None = None) -> httpx.Response:
        params = {"ttl": str(ttl)} if ttl is not None else None
        return self.request("PATCH", path, body, params, "application/merge-patch+json")

    def delete(self, path: str, recursive: bool = False) -> httpx.Response:
        params = {"recursive": "true"} if recursive else None
        return self.request("DELETE", path, params=params)

    # -- folders --------------------------------------------------------------------------

    def list_pages(
        self, folder: str, values: bool = False, limit: int = LISTING_PAGE
    ) -> Iterator[dict[str, Any]]:
        """Every page of a folder's listing, following the `next` cursor."""
        folder = folder.strip("/") + "/" if folder.strip("/") else ""
        params = {"limit": str(limit)}
        if values:
            params["values"] = "true"
        while True:
            page = documents.loads(self.request("GET", folder, params=params).content)
            yield page
            if not page.get("next"):
                return
            params["cursor"] = page["next"]

    def walk(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        """Every thing below a folder at any depth, as {path, thing, ttl}, with the thing as
        stored (without the reserved `ttl` and `last_updated`). Uses listings with values, so a
        page of up to 1000 things costs one request; a server that leaves values out gets one
        GET per thing."""
        folders = [prefix]
        while folders:
            folder = folders.pop()
            for page in self.list_pages(folder, values=True):
                for entry in page.get("things", []):
                    # Top-level names starting with _ (written by the Firebase face, which
                    # allows them) are refused by import: an export leaves them out.
                    if entry["path"].startswith("_"):
                        continue
                    record = self._record(entry)
                    if record is not None:
                        yield record
                # Depth first, in name order: an export's order is stable between runs.
                below = [name for name in page.get("folders", []) if not name.startswith("_")]
                folders.extend(reversed(below))

    def _record(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        path = entry["path"]
        thing = entry.get("value")
        ttl = entry.get("ttl")
        if not isinstance(thing, dict):
            try:
                thing = documents.loads(self.get(path).content)
            except ClientError as error:
                if error.status == 404:
                    return None  # expired or deleted between the listing and the read
                raise
            ttl = thing.get("ttl", ttl)
        thing = {k: v for k, v in thing.items() if k not in documents.RESERVED_FIELDS}
        return {"path": path, "thing": thing, "ttl": ttl}

    # -- bulk -----------------------------------------------------------------------------

    def _sender(self) -> Callable[[str, str, bytes, str], tuple[int, bytes, float]]:
        """send(method, path+query, body, content type) -> (status, body, seconds of any
        Retry-After, else 1), each thread on its
        own keep-alive connection of the standard library's http.client: per request it costs
        a fraction of a general client's CPU, which is what bounds a bulk load when client and
        server share a machine."""
        local = threading.local()
        base = self.http.base_url
        prefix = base.raw_path.decode().rstrip("/")
        kind = http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection

        def send(method: str, url: str, body: bytes, content_type: str) -> tuple[int, bytes, float]:
            headers = {"Content-Type": content_type, **self._auth}
            for attempt in (1, 2):
                if getattr(local, "conn", None) is None:
                    local.conn = kind(base.host, base.port, timeout=self.http.timeout.read)
                conn = local.conn
                try:
                    conn.request(method, prefix + url, body, headers)
                    response = conn.getresponse()
                    retry_after = response.getheader("Retry-After", "1")
                    wait = float(retry_after) if retry_after.isdigit() else 1.0
                    return response.status, response.read(), wait
                except (OSError, http.client.HTTPException) as error:
                    conn.close()
                    local.conn = None
                    # A kept-alive connection the server closed: retry once on a new one.
                    if attempt == 2:
                        raise ClientError(
                            f"cannot reach {base}: {error}", EXIT_CONNECTION
                        ) from None
            raise AssertionError("unreachable")

        return send

    def put_many(
        self,
        records: Iterable[dict[str, Any]],
        workers: int = 8,
        on_done: Callable[[], None] | None = None,
    ) -> list[tuple[str, ClientError]]:
        """PUT {path, thing, ttl} records concurrently, one request each; return the failures."""
        send = self._sender()

        def put_one(record: dict[str, Any]) -> tuple[str, ClientError] | None:
            ttl = record.get("ttl")
            url = quote_path(record["path"])
            if ttl is not None:
                url += f"?ttl={max(int(ttl), 1)}"
            try:
                status, body, _ = send("PUT", url, documents.dumps(record["thing"]), JSON_TYPE)
            except ClientError as error:
                return record["path"], error
            if status >= 400:
                return record["path"], _problem(httpx.Response(status, content=body))
            return None

        failures = []
        with ThreadPoolExecutor(workers) as pool:
            for failure in pool.map(put_one, records):
                if failure is not None:
                    failures.append(failure)
                if on_done is not None:
                    on_done()
        return failures

    def import_lines(
        self,
        lines: list[tuple[int, bytes]],
        workers: int = IMPORT_WORKERS,
        on_done: Callable[[int], None] | None = None,
    ) -> list[tuple[str, ClientError]] | None:
        """Send export lines, (line number, JSON without newline), to POST /_import in batches
        under the server's body limit; return the failures, one per batch. None when the server
        has no /_import (404 for the first batch; nothing was written): PUT each instead."""
        send = self._sender()
        batches = list(_batches(lines))
        failures: list[tuple[str, ClientError]] = []

        def attempt(batch: list[tuple[int, bytes]]) -> tuple[int, bytes]:
            """POST one batch; over the rate limit or while the store is unavailable, wait as
            asked and send it again (harmless: the same lines store the same things)."""
            lines = b"\n".join(r for _, r in batch)
            for tries in range(1, IMPORT_TRIES + 1):
                status, body, wait = send("POST", "/_import", lines, JSONL)
                if status not in (429, 503) or tries == IMPORT_TRIES:
                    break
                time.sleep(min(wait, RECONNECT_MAX_S))
            return status, body

        def post(batch: list[tuple[int, bytes]]) -> list[tuple[str, ClientError]]:
            try:
                status, body = attempt(batch)
            except ClientError as error:
                return [(_line_span(batch), error)]
            if status == 413 and len(batch) > 1:
                # The server's limit is under ours: halve the batch until it fits.
                half = len(batch) // 2
                return post(batch[:half]) + post(batch[half:])
            if status >= 400:
                problem = _problem(httpx.Response(status, content=body))
                return [(_line_span(batch), _renumbered(problem, batch))]
            if on_done is not None:
                on_done(len(batch))
            return []

        if not batches:
            return []
        first = batches[0]
        # The first batch alone tells whether the server has /_import at all.
        status, body = attempt(first[:1])
        if status == 404:
            return None
        if status >= 400:
            return [
                (
                    _line_span(first[:1]),
                    _renumbered(_problem(httpx.Response(status, content=body)), first[:1]),
                )
            ]
        if on_done is not None:
            on_done(1)
        rest = [first[1:], *batches[1:]] if len(first) > 1 else batches[1:]
        with ThreadPoolExecutor(workers) as pool:
            for failed in pool.map(post, rest):
                failures.extend(failed)
        return failures

    # -- watching -------------------------------------------------------------------------

    def watch(
        self,
        path: str,
        last_event_id: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Iterator[Event]:
        """Events for a thing or a folder, forever: after a dropped connection it reconnects
        with Last-Event-ID so nothing is missed. Fails (ClientError) only when the first
        connection cannot be made or the server refuses the watch."""
        delay = RECONNECT_FIRST_S
        connected_once = False
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                with httpx_sse.connect_sse(
                    self.http,
                    "GET",
                    quote_path(path),
                    params=params,
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=None),
                ) as source:
                    status = source.response.status_code
                    if status >= 400:
                        source.response.read()
                        if not (connected_once and status >= 500):
                            raise _problem(source.response)
                        raise httpx.RemoteProtocolError(f"server answered {status}")
                    connected_once = True
                    delay = RECONNECT_FIRST_S
                    for sse in source.iter_sse():
                        if sse.retry:
                            delay = sse.retry / 1000
                        if sse.id:
                            last_event_id = sse.id
                        if not sse.data:
                            continue
                        yield Event(sse.id, sse.event, documents.loads(sse.data.encode()))
            except (httpx.TransportError, httpx_sse.SSEError) as error:
                if not connected_once:
                    raise ClientError(
                        f"cannot watch {path} at {self.http.base_url}: {error}", EXIT_CONNECTION
                    ) from None
            # The stream ended or broke: wait a little (longer each time) and resume.
            time.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
