"""/_ui: the web console, plain HTML, CSS and JavaScript shipped in the package (static/ui/),
no build step and nothing fetched from elsewhere. It speaks only the public HTTP API."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, abort, send_from_directory

bp = Blueprint("console", __name__)

ASSETS = Path(__file__).parent / "static" / "ui"
SERVED = ("app.js", "app.css", "icon.svg")


@bp.get("/_ui")
def page() -> Response:
    response = send_from_directory(ASSETS, "index.html", max_age=0)
    # The console runs the API as the user, so no other site may frame it.
    response.headers["X-Frame-Options"] = "DENY"
    return response


@bp.get("/_ui/<asset>")
def asset(asset: str) -> Response:
    if asset not in SERVED:
        abort(404)
    return send_from_directory(ASSETS, asset, max_age=300)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
