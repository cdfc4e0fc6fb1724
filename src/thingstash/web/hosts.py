"""Which `Host` names a server bound to loopback answers: a defence against DNS rebinding.

A web page can make its own domain resolve to 127.0.0.1 and then talk to a local server as
"same origin", with no CORS check at all; its requests still carry its own domain in `Host`.
So a server bound to loopback answers only requests addressed to a loopback name (localhost,
127.0.0.1, [::1], and any *.localhost, which browsers resolve to loopback themselves), on any
port, plus the names listed in THINGSTASH_ALLOWED_HOSTS (a name starting with "." also allows
its subdomains). Anything else gets 421 Misdirected Request. A server bound to any other
address is reached by names we cannot know: it checks only the listed names, if any. A request
without a Host header (HTTP/1.0: HAProxy's default health check) comes from no browser and
passes; granian gives such a request an empty HTTP_HOST, taken as none.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, request

from thingstash.core import keys
from thingstash.core.config import Settings
from thingstash.web.errors import Problem

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def hostname(header: str) -> str | None:
    """The name in a Host header (lower case, IPv6 without brackets); None if it is malformed."""
    try:
        parts = urlsplit("//" + header)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        return None
    if parts.username is not None or parts.path or parts.query or parts.fragment:
        return None
    return parts.hostname or None


def allowed(name: str, listed: tuple[str, ...], loopback: bool) -> bool:
    if loopback and (name in LOOPBACK_NAMES or name.endswith(".localhost")):
        return True
    for entry in listed:
        if name == entry.lstrip(".") or entry.startswith(".") and name.endswith(entry):
            return True
    return False


def host_check(settings: Settings) -> Callable[[str], bool] | None:
    """Whether a Host header names this server; None when it answers any name."""
    loopback = keys.is_loopback(settings.host)
    listed = settings.allowed_hosts
    if not loopback and not listed:
        return None  # a public server answers to whatever names point at it

    def answered(header: str) -> bool:
        name = hostname(header)
        return name is not None and allowed(name, listed, loopback)

    return answered


def init_app(app: Flask, settings: Settings) -> None:
    answered = host_check(settings)
    if answered is None:
        return
    loopback = keys.is_loopback(settings.host)
    listed = settings.allowed_hosts
    loopback_names = ["localhost, 127.0.0.1, [::1], *.localhost"] if loopback else []
    names = ", ".join([*loopback_names, *listed])

    def check_host() -> None:
        header = request.environ.get("HTTP_HOST")
        if not header:  # none, or granian's empty one for HTTP/1.0 without Host
            return
        if not answered(header):
            raise Problem(
                421,
                "host not served here",
                f"this server does not answer requests addressed to {header[:200]!r}; it "
                f"answers {names} (THINGSTASH_ALLOWED_HOSTS lists more)",
            )

    app.before_request(check_host)
