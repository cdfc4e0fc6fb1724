"""The faces people meet besides the API itself: /_openapi.json and /_docs (openapi.py), and
the web console /_ui (console.py)."""

from __future__ import annotations

from flask import Flask

from thingstash.web import console, openapi


def init_app(app: Flask) -> None:
    openapi.init_app(app)
    console.init_app(app)
