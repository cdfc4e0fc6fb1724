"""CORS through flask-cors: browsers on any origin (or the ones THINGSTASH_CORS_ORIGINS lists,
comma-separated) may call the store, send keys and preconditions, and read the headers a client
of this API needs (ETag for conditional writes, Location for pushes, Retry-After, ...)."""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

EXPOSED = ["ETag", "Last-Modified", "Location", "Last-Event-ID", "Retry-After", "X-Request-ID"]
ALLOWED = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Last-Event-ID",
    "X-Request-ID",
]


def init_app(app: Flask, origins: str) -> None:
    allowed: str | list[str] = "*"
    if origins.strip() != "*":
        allowed = [o.strip() for o in origins.split(",") if o.strip()]
    CORS(
        app,
        origins=allowed,
        expose_headers=EXPOSED,
        allow_headers=ALLOWED,
        methods=["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"],
        max_age=600,
        # Keys travel in Authorization, not cookies: no credentials mode needed.
        supports_credentials=False,
    )
