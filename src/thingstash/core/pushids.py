"""Server-made IDs for POST that sort by creation time, like Firebase push IDs.

8 characters of time in ms then 12 random ones, from an alphabet in ASCII order, so sorting the
names sorts by creation. Within one millisecond the random part counts up, so IDs made by one
process stay in order even when they share a timestamp.
"""

from __future__ import annotations

import secrets
import threading
import time

ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_lock = threading.Lock()
_last_ms = -1
_last_random: list[int] = []


def push_id(now_ms: int | None = None) -> str:
    global _last_ms, _last_random
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    with _lock:
        if now_ms <= _last_ms:
            now_ms = _last_ms  # never step back, even if the clock does
            for i in range(11, -1, -1):  # count up, carrying
                if _last_random[i] < 63:
                    _last_random[i] += 1
                    break
                _last_random[i] = 0
        else:
            _last_random = [secrets.randbelow(64) for _ in range(12)]
        _last_ms = now_ms
        random_part = "".join(ALPHABET[i] for i in _last_random)
    time_part = ""
    for _ in range(8):
        time_part = ALPHABET[now_ms % 64] + time_part
        now_ms //= 64
    return time_part + random_part
