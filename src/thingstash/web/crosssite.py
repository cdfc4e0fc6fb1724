"""Cross-site writes: a web page may change data only if the CORS policy allows its origin.

CORS keeps a page from reading answers, not from sending requests: a browser sends a "simple"
request (a POST of a form, of `text/plain`, or of no Content-Type; a form's method override in
the query string) from any page without asking first, and the server would carry it out. So a
request that could change data (any method but GET, HEAD and OPTIONS, and any method override,
header or `?x-http-method-override=`) that comes from a browser context the CORS policy
(cors.py, the same answer flask-cors gives) does not allow is refused with 403 before it runs:

- an `Origin` the policy allows, or the server's own origin (scheme and Host: a page it serves
  itself, such as the console), passes;
- `Sec-Fetch-Site: same-origin` or `none` (the user's own navigation) passes;
- any other `Origin`, and `Sec-Fetch-Site: cross-site` or `same-site` without an allowed one,
  is refused;
- no `Origin` and no `Sec-Fetch-Site`: not a browser (curl, scripts, SDKs), passes.

An open store allows loopback pages only, so a page on the internet cannot change it; a closed
one allows every origin (each request needs a key the page must be given), so this passes and
the key check decides; THINGSTASH_CORS_ORIGINS sets the origins whatever the state. Reads are
left to CORS, which hides their answers. The fast path (fastpath.py) leaves any request with
an `Origin` or a `Sec-Fetch-Site` to the app, where this runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, request

from thingstash.web import cors
from thingstash.web.errors import Problem

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sec-Fetch-Site values of a request the page's own origin (or the user) made.
OWN_SITE = frozenset({"same-origin", "none"})


class CrossSiteWrite(Problem):
    """A write from a web page the CORS policy does not allow (403; each face says it its way)."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, "cross-site write refused", detail)


def may_change(environ: dict[str, Any]) -> bool:
    """Whether the request could change data: its method, or a method override it carries."""
    return (
        environ.get("REQUEST_METHOD") not in SAFE_METHODS
        or "HTTP_X_HTTP_METHOD_OVERRIDE" in environ
        or "method-override" in environ.get("QUERY_STRING", "").lower()
    )


def _own_origin(environ: dict[str, Any]) -> str:
    return f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}".lower()


def refusal(environ: dict[str, Any], allows: Callable[[str], bool]) -> CrossSiteWrite | None:
    """Why this request is refused as a cross-site write, or None when it may run.
    `allows(origin)`: the CORS policy's answer (cors.allows_origin)."""
    origin: str | None = environ.get("HTTP_ORIGIN")
    site: str | None = environ.get("HTTP_SEC_FETCH_SITE")
    if origin is None and site is None:
        return None  # not a browser
    if site in OWN_SITE or not may_change(environ):
        return None
    if origin is None:
        return CrossSiteWrite(
            f"a web page on another site (Sec-Fetch-Site: {(site or '')[:40]}) may not change data "
            "here; nothing was done"
        )
    if origin.lower() == _own_origin(environ) or allows(origin):
        return None
    return CrossSiteWrite(
        f"a web page of {origin[:200]!r} may not change data here: this store's CORS policy "
        "does not allow that origin (an open store allows loopback pages only; "
        "THINGSTASH_CORS_ORIGINS sets the origins); nothing was done"
    )


def init_app(app: Flask) -> None:
    """After cors.init_app, whose policy decides; before the views."""
    allows = cors.allows_origin(app)

    def check_cross_site() -> None:
        refused = refusal(request.environ, allows)
        if refused is not None:
            raise refused

    app.before_request(check_cross_site)
