"""The HTTP client of a thingstash server (http.py) and the `thingstash` commands built on it
(commands.py): httpx and click, the public HTTP contract only; never web/, store/, Flask or Redis.
"""

from __future__ import annotations

from thingstash.client.http import DEFAULT_URL, Client, ClientError

__all__ = ["DEFAULT_URL", "Client", "ClientError"]
