"""The HTTP client of a thingstash server (http.py): httpx and the public HTTP contract only;
never web/, store/, Flask or Redis. The `thingstash` commands built on it are cli/client.py.
"""

from __future__ import annotations

from thingstash.client.http import DEFAULT_URL, Client, ClientError

__all__ = ["DEFAULT_URL", "Client", "ClientError"]
