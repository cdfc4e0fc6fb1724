"""A small HTTP client for a thingstash server: what the command-line client, export, import
and bench are built on. It speaks only the public HTTP contract (API.md), never Redis.

Errors become ClientError with an exit code that scripts can rely on (see EXIT_* below).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import httpx_sse

from thingstash import documents

DEFAULT_URL = "http://127.0.0.1:8080"

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_HTTP_ERROR = 3
EXIT_CONNECTION = 4

RESERVED_FIELDS = ("ttl", "last_updated")
LISTING_PAGE = 1000  # the server's maximum page: fewest round trips for export
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
                    record = self._record(entry)
                    if record is not None:
                        yield record
                # Depth first, in name order: an export's order is stable between runs.
                folders.extend(reversed(page.get("folders", [])))

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
        thing = {k: v for k, v in thing.items() if k not in RESERVED_FIELDS}
        return {"path": path, "thing": thing, "ttl": ttl}

    # -- bulk -----------------------------------------------------------------------------

    def put_many(
        self,
        records: Iterable[dict[str, Any]],
        workers: int = 8,
        on_done: Callable[[], None] | None = None,
    ) -> list[tuple[str, ClientError]]:
        """PUT {path, thing, ttl} records concurrently; return the failures.

        Each worker keeps one keep-alive connection of the standard library's http.client:
        per request it costs a fraction of a general client's CPU, which is what bounds an
        import of 100,000 things when client and server share a machine."""
        local = threading.local()
        base = self.http.base_url
        headers = {"Content-Type": "application/json", **self._auth}

        def connection() -> http.client.HTTPConnection:
            if getattr(local, "conn", None) is None:
                kind = (
                    http.client.HTTPSConnection
                    if base.scheme == "https"
                    else (http.client.HTTPConnection)
                )
                local.conn = kind(base.host, base.port, timeout=self.http.timeout.read)
            return local.conn

        def send(url: str, body: bytes) -> tuple[int, bytes]:
            for attempt in (1, 2):
                conn = connection()
                try:
                    conn.request("PUT", url, body, headers)
                    response = conn.getresponse()
                    return response.status, response.read()
                except (OSError, http.client.HTTPException) as error:
                    conn.close()
                    local.conn = None
                    # A kept-alive connection the server closed: retry once on a new one.
                    if attempt == 2:
                        raise ClientError(
                            f"cannot reach {base}: {error}", EXIT_CONNECTION
                        ) from None
            raise AssertionError("unreachable")

        prefix = base.raw_path.decode().rstrip("/")

        def put_one(record: dict[str, Any]) -> tuple[str, ClientError] | None:
            ttl = record.get("ttl")
            url = prefix + quote_path(record["path"])
            if ttl is not None:
                url += f"?ttl={max(int(ttl), 1)}"
            try:
                status, body = send(url, documents.dumps(record["thing"]))
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

    # -- watching -------------------------------------------------------------------------

    def watch(self, path: str, last_event_id: str | None = None) -> Iterator[Event]:
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
