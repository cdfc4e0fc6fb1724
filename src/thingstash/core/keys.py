"""API keys, the domain part: their format, scopes, making and checking one, and the refusal to
serve an open store on a non-loopback address. No HTTP here (web.auth is the Flask hook).

A key is `tsk_<id>_<secret>`: a 12-hex-digit id to find its record in one HGET, and 192 random
bits. Only the sha256 of the whole key is stored (a fast hash is enough for keys this random;
no one can guess a preimage), and it is compared in constant time.

Scopes nest: `read` < `write` < `admin` (web.auth says what each allows).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time

from thingstash.core.model import KeyRecord
from thingstash.core.store import Keys

SCOPES = ("read", "write", "admin")
_KEY_PREFIX = "tsk_"
_ID_HEX = 12


class OpenStoreRefused(RuntimeError):
    """Serving an open store on a non-loopback address was not asked for."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(store: Keys, scope: str, prefix: str = "") -> tuple[KeyRecord, str]:
    """Make and store a new key; return its record and the key, which exists only here."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    while True:
        key_id = secrets.token_hex(_ID_HEX // 2)
        key = f"{_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
        record = KeyRecord(key_id, digest(key), scope, prefix, int(time.time()))
        if store.add_key(record):
            return record, key


def key_id_of(key: str) -> str | None:
    if not key.startswith(_KEY_PREFIX) or key[len(_KEY_PREFIX) + _ID_HEX :][:1] != "_":
        return None
    key_id = key[len(_KEY_PREFIX) : len(_KEY_PREFIX) + _ID_HEX]
    return key_id if all(c in "0123456789abcdef" for c in key_id) else None


def verify(store: Keys, key: str) -> KeyRecord | None:
    """The record of a valid key, or None."""
    key_id = key_id_of(key)
    if key_id is None:
        return None
    record = store.get_key(key_id)
    if record is None or not hmac.compare_digest(record.digest, digest(key)):
        return None
    return record


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, public: bool, store: Keys) -> None:
    """Refuse to serve an open store (no key created) on a non-loopback address unless asked."""
    if public or is_loopback(host) or store.key_count() > 0:
        return
    raise OpenStoreRefused(
        f"refusing to serve an open store on {host}: no API key exists yet, so anyone who can "
        "reach this address could read and change everything.\n"
        "Create a key first (same --redis-url or --data-dir as serve):\n"
        "    thingstash keys create --scope admin\n"
        "or, if an open store is really meant, pass --public (or set THINGSTASH_PUBLIC=1)."
    )
