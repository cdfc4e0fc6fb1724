"""thingstash: an instant JSON store over HTTP, built on Flask and Redis.

Importing the package loads nothing else: the app is `thingstash.web.app.create_app`, the
settings `thingstash.core.config.Settings`, the HTTP client `thingstash.client.Client`. The README's
"Layout" section says what each folder holds and may import.
"""

from __future__ import annotations

__version__ = "0.1.0"
