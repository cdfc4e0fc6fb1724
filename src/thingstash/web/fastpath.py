"""The hot path: plain reads and writes of one thing, and listing pages, answered without Flask's
request machinery. Its twin is the app's own views, which answer every other request for a thing
or a folder: things.read (through its GET table), things.replace, things.patch and
folders.read_folder. What one answers, the other must answer the same (tests/web/test_fastpath.py).

GET, HEAD, PUT and PATCH of a thing are most of what a store serves, and Flask spends more CPU on
each (request context, proxies, routing, before/after hooks, a `Response` and its `Headers`)
than the thing itself does (bench/hotpath.py). So these, and GET and HEAD of a folder's listing
page, are answered here, in front of the Flask app, with exactly what the app would answer:
same status line, same headers in the same order, same body; an error by the app's own handler
(errors.HANDLERS). Any request that is not plain goes to the app, unchanged:

- another method (a PUT or PATCH of a folder too), or a service path (`/_...`), a path that is
  not ASCII or not valid, a path the app routes elsewhere than to things (a route added later);
- a query string (`?ttl=`), but a listing's `limit`, `cursor` and `values` given once each with
  values URL decoding leaves alone (anything else, a folder's query or a value to decode or
  refuse, is the app's); `Accept: text/event-stream` (a watch), any precondition
  (If-Match, If-None-Match, If-Modified-Since), an `Origin` (CORS) or a `Sec-Fetch-Site` (a
  browser's: crosssite.py decides whether it may write), an `Authorization` (keys);
- a store that needs a key (closed), a rate limit, a Host the app would refuse;
- a store with a rules document (they judge keyless requests: the app's doors, rulesguard.py,
  do). Whether it has one is remembered per process (auth.RulesPresence: one round trip a
  second at most, none per request), so a store without rules pays nothing more here; the
  price is that a first rules document, stored by another process (or the Firebase face),
  takes up to auth.RULES_PRESENCE_SECONDS to be enforced by this one's fast path;
- a body whose Content-Type is not exactly one the view takes without parsing the header, was
  refused on arrival, or is not a JSON object with a good `ttl` (the app says what is wrong);
  a PUT with server values (`.sv`).

What the app's hooks do for such a request is done here too, each at its cheapest: the Host
check (hosts.py; its answer per Host header is remembered), the key check (auth.py: an open
store lets a keyless request do anything; the answer is the one auth keeps per process), the
CORS headers of a request without an Origin (cors.py computes them once). The access log,
metrics, the body's arrival and the admission gate are WSGI layers around both paths.

It is switched on only when the app's hooks are exactly the ones it stands in for: a feature
that adds a hook turns it off until this learns what that hook does.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response

from thingstash.core import documents
from thingstash.core.config import MAX_DEPTH, MAX_PAGE_VALUE_BYTES, Settings
from thingstash.core.documents import BadDocument
from thingstash.core.model import NO_CONDITIONS, StorageUnavailable, WriteResult, version_time_ms
from thingstash.core.paths import BadPath, parse_path
from thingstash.core.store import Store
from thingstash.web import errors, folders
from thingstash.web.preconditions import etag
from thingstash.web.things import PATCH_TYPES, merge_patch_change

log = logging.getLogger(__name__)

_StartResponse = Callable[..., Any]
_WSGIApp = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]
Header = tuple[str, str]

JSON_TYPE = "application/json"
# Request headers that make a request not plain: each needs the app's own handling.
_NOT_PLAIN = (
    "HTTP_ORIGIN",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_AUTHORIZATION",
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
)
EXTENSION = "thingstash.fastpath"  # where create_app keeps it
_WRITTEN = {True: "201 CREATED", False: "200 OK"}
_HOSTS_REMEMBERED = 256


class FastPath:
    """WSGI: plain GET, HEAD, PUT and PATCH of a thing, and GET and HEAD of a listing page, here
    (the twins of things.read, replace and patch, and folders.read_folder); everything else to
    `app`. Off until `switch_on` is given what it stands in for, once the app is complete."""

    def __init__(self, app: _WSGIApp) -> None:
        self.app = app
        self.on = False
        self.hosts: dict[str, bool] = {}

    def switch_on(
        self,
        settings: Settings,
        store: Store,
        is_open: Callable[[], bool],
        has_rules: Callable[[], bool],
        host_allowed: Callable[[str], bool] | None,
        cors_headers: list[Header],
        http_date: Callable[[int], str],
        other_routes: tuple[str, ...],
    ) -> None:
        self.store = store
        self.is_open = is_open
        self.has_rules = has_rules
        self.host_allowed = host_allowed
        # Added to every answer without an Origin, after the app's own headers (cors.py).
        self.cors_headers = cors_headers
        self.http_date = http_date
        # Paths the app routes elsewhere than to things (none today): left to it.
        self.other_routes = other_routes
        self.default_ttl = settings.default_ttl
        self.max_ttl = settings.max_ttl
        self.anonymous_read = settings.anonymous_read
        self.on = True

    def __call__(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        if not self.on:
            return self.app(environ, start_response)
        method = environ["REQUEST_METHOD"]
        folder = environ.get("PATH_INFO", "")[-1:] == "/"
        if method == "GET" or method == "HEAD":
            if "text/event-stream" in environ.get("HTTP_ACCEPT", ""):
                return self.app(environ, start_response)
            respond = self._list if folder else self._read
        elif method == "PUT" and not folder:
            respond = self._replace
        elif method == "PATCH" and not folder:
            respond = self._patch
        else:
            return self.app(environ, start_response)
        try:
            if self.has_rules():  # the rules judge keyless requests: the app's doors do
                return self.app(environ, start_response)
        except StorageUnavailable as error:  # Redis away: the app's 503, without asking again
            return self._error(error, environ, start_response)
        path = self._plain_path(environ, folder)
        if path is None:
            return self.app(environ, start_response)
        try:
            return respond(path, method, environ, start_response)
        except Exception as error:
            # The app's own answer to each (errors.HANDLERS: a domain error's problem, anything
            # unexpected a logged 500 problem), never the server's bare 500.
            return self._error(error, environ, start_response)

    def _plain_path(self, environ: dict[str, Any], folder: bool) -> str | None:
        """The thing's or folder's path when the request is plain (see the module docstring),
        else None. A folder's query string is read by _list."""
        if not folder and environ.get("QUERY_STRING"):
            return None
        for name in _NOT_PLAIN:
            if name in environ:
                return None
        wire = environ.get("PATH_INFO", "")
        if not wire.isascii() or wire[:1] != "/" or wire[1:2] == "_":
            return None
        if wire.startswith(self.other_routes):
            return None
        if self.host_allowed is not None:
            host = environ.get("HTTP_HOST")
            if host and not self._host_ok(host):  # none, or empty (HTTP/1.0): passes
                return None
        try:
            return parse_path(wire[1:]).text
        except BadPath:
            return None

    def _host_ok(self, host: str) -> bool:
        known = self.hosts.get(host)
        if known is None:
            assert self.host_allowed is not None
            known = self.host_allowed(host)
            if len(self.hosts) < _HOSTS_REMEMBERED:  # a client picks the header: stay small
                self.hosts[host] = known
        return known

    def _read(
        self, path: str, method: str, environ: dict[str, Any], start_response: _StartResponse
    ) -> Iterable[bytes]:
        """A thing (things.read, its _read_thing)."""
        if not (self.anonymous_read or self.is_open()):
            return self.app(environ, start_response)
        thing = self.store.get(path)
        if thing is None:
            return self._error(errors.thing_missing(path), environ, start_response)
        last_updated = version_time_ms(thing.version) // 1000
        body = documents.thing_json(thing.body, thing.ttl, last_updated)
        start_response("200 OK", self._headers(thing.version, last_updated, len(body)))
        return [body] if method == "GET" else []

    def _list(
        self, folder: str, method: str, environ: dict[str, Any], start_response: _StartResponse
    ) -> Iterable[bytes]:
        """A listing page (folders.read_folder), when its query is only `limit`, `cursor` and
        `values`, each once, with values that need no decoding and are good."""
        if not (self.anonymous_read or self.is_open()):
            return self.app(environ, start_response)
        asked = _listing_query(environ.get("QUERY_STRING", ""))
        if asked is None:
            return self.app(environ, start_response)
        try:
            limit = folders.DEFAULT_LIMIT
            if "limit" in asked:
                limit = documents.whole_number(asked["limit"], "limit", 1, folders.MAX_LIMIT)
            after = folders.decode_cursor(asked.get("cursor"))
            values = folders.parse_values(asked.get("values"))
        except (BadDocument, errors.Problem):
            return self.app(environ, start_response)  # it says what is wrong
        page = self.store.list_folder(folder, after, limit, values, MAX_PAGE_VALUE_BYTES)
        body = folders.listing_json(folder, page)
        start_response(
            "200 OK",
            [
                ("Content-Type", JSON_TYPE),
                ("Content-Length", str(len(body))),
                ("Last-Event-ID", page.position),
                ("Cache-Control", "no-cache"),
                *self.cors_headers,
            ],
        )
        return [body] if method == "GET" else []

    def _replace(
        self, path: str, method: str, environ: dict[str, Any], start_response: _StartResponse
    ) -> Iterable[bytes]:
        """A PUT of a thing (things.replace)."""
        doc = self._document(environ, (JSON_TYPE,))
        if doc is None:
            return self.app(environ, start_response)
        try:
            ttl = documents.resolve_ttl(
                documents.pop_reserved(doc), None, self.default_ttl, self.max_ttl
            )
            body = documents.dumps(doc)
        except BadDocument:
            return self.app(environ, start_response)  # it says what is wrong
        if documents.SERVER_VALUE_KEY in body and documents.has_server_values(doc):
            return self.app(environ, start_response)
        result = self.store.put(path, body, ttl, NO_CONDITIONS, "put")
        return self._written(result, body, start_response)

    def _document(
        self, environ: dict[str, Any], content_types: tuple[str, ...]
    ) -> dict[str, Any] | None:
        """The body, a JSON object, when the request may be answered here: the store is open,
        the Content-Type is exactly one of `content_types`, and the body is a thing's (else
        None, and the app answers, saying what is wrong; the buffered body is still unread)."""
        stream = environ.get("wsgi.input")
        if environ.get("CONTENT_TYPE") not in content_types or type(stream) is not io.BytesIO:
            return None
        if not self.is_open():
            return None
        try:
            return documents.loads_object(stream.getvalue(), MAX_DEPTH)
        except BadDocument:
            return None

    def _written(
        self, result: WriteResult, body: bytes, start_response: _StartResponse
    ) -> Iterable[bytes]:
        last_updated = version_time_ms(result.version) // 1000
        answer = documents.thing_json(body, result.ttl_ms // 1000, last_updated)
        start_response(
            _WRITTEN[result.created], self._headers(result.version, last_updated, len(answer))
        )
        return [answer]

    def _patch(
        self, path: str, method: str, environ: dict[str, Any], start_response: _StartResponse
    ) -> Iterable[bytes]:
        """A PATCH of a thing (things.patch)."""
        merge = self._document(environ, PATCH_TYPES)
        if merge is None:
            return self.app(environ, start_response)
        try:
            ttl = documents.resolve_ttl(
                documents.pop_reserved(merge), None, self.default_ttl, self.max_ttl
            )
        except BadDocument:
            return self.app(environ, start_response)
        change = merge_patch_change(path, merge, ttl)
        result, body = self.store.update(path, change, NO_CONDITIONS, "patch")
        return self._written(result, body, start_response)

    def _headers(self, version: str, last_updated: int, length: int) -> list[Header]:
        """What the app's thing responses carry (things.py), in its order, then CORS's."""
        return [
            ("ETag", etag(version)),
            ("Last-Modified", self.http_date(last_updated)),
            ("Cache-Control", "no-cache"),
            ("Content-Type", JSON_TYPE),
            ("Content-Length", str(length)),
            *self.cors_headers,
        ]

    def _error(
        self, error: Exception, environ: dict[str, Any], start_response: _StartResponse
    ) -> Iterable[bytes]:
        """`error` answered by the app's own handler (errors.py), with the CORS headers."""
        handler = next(errors.HANDLERS[c] for c in type(error).__mro__ if c in errors.HANDLERS)
        response: Response = handler(error)
        response.headers.extend(self.cors_headers)
        return response(environ, start_response)


_LISTING_PARAMETERS = frozenset({"limit", "cursor", "values"})
# Characters a listing parameter's value may have here: none that URL decoding would change.
_AS_SENT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _listing_query(query: str) -> dict[str, str] | None:
    """The parameters of a listing's query string, each `name=value` with a name of
    _LISTING_PARAMETERS given once and a value of _AS_SENT characters; None for any other
    query (a query of the folder, a repeated or encoded parameter: the app's)."""
    asked: dict[str, str] = {}
    if not query:
        return asked
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if not equals or name not in _LISTING_PARAMETERS or name in asked:
            return None
        if not _AS_SENT.issuperset(value):
            return None
        asked[name] = value
    return asked


# The app's request hooks whose work the fast path does, by (module, name): the Host check, the
# key check and its refusal, the CORS headers, the cross-site write check (it passes every
# request without an Origin or a Sec-Fetch-Site, the only ones answered here). Any other hook
# keeps the fast path off.
KNOWN_HOOKS = frozenset(
    {
        ("thingstash.web.hosts", "init_app.<locals>.check_host"),
        ("thingstash.web.auth", "_identify"),
        ("thingstash.web.auth", "_enforce"),
        ("thingstash.web.cors", "init_app.<locals>.add_cors_headers"),
        ("thingstash.web.cors", "init_app.<locals>.add_varying_cors_headers"),
        ("thingstash.web.crosssite", "init_app.<locals>.check_cross_site"),
    }
)
THING_RULE = "/<anypath:raw>"


def switch_on_if_known(app: Flask, fast: FastPath, settings: Settings, store: Store) -> bool:
    """Switch `fast` on when `app` does nothing to a plain request that the fast path does not
    do too; whether it did."""
    from thingstash.web import auth, cors, hosts, things

    if settings.rate_limit:
        return False  # the limiter counts every request in Redis: the app's way
    registries = (
        app.before_request_funcs,
        app.after_request_funcs,
        app.teardown_request_funcs,
        app.url_value_preprocessors,
    )
    for registry in registries:
        for hooks in registry.values():
            for hook in hooks:
                if (hook.__module__, hook.__qualname__) not in KNOWN_HOOKS:
                    log.info("fast path off: the app has a hook it does not know, %r", hook)
                    return False
    if cors.PLAIN_HEADERS not in app.extensions:
        return False
    other_routes = tuple(
        rule.rule.split("<", 1)[0] for rule in app.url_map.iter_rules() if rule.rule != THING_RULE
    )
    fast.switch_on(
        settings,
        store,
        auth.open_check(app, settings, store),
        auth.rules_presence(app),
        hosts.host_check(settings),
        app.extensions[cors.PLAIN_HEADERS],
        things.cached_http_date,
        other_routes,
    )
    return True
