"""What both faces' routers share: the `anypath` converter (the whole path as sent)."""

from __future__ import annotations

from werkzeug.routing import BaseConverter


class AnyPathConverter(BaseConverter):
    """Everything after the first slash, empty segments and trailing slash included, so that
    the view (not the router) decides what is a bad path and says why."""

    regex = r"[\s\S]*"  # newlines too: they are refused by the view, with a reason
    part_isolating = False
