"""A redis-py client whose commands go over the calling thread's own connection.

A call through `redis.Redis` takes a connection from the pool and gives it back, runs the retry
wrapper and the client's observability hooks: about 12 µs of CPU on every call
(bench/hotpath.py: ~20 µs for a script call against ~8 µs on a bare connection). The requests
of a granian worker run on a few threads (server.admit), so each thread keeps one connection of
its own and talks to it directly: the command is packed, sent, and its reply parsed (hiredis)
with the client's own response callbacks, nothing else in between. Everything else about the
client is unchanged: its settings, `Script` objects, pipelines and pub/sub (which keep using its
pool), and whatever wraps `execute_command`.

What the pool and the retry wrapper did and this keeps:
- reconnection: a connection that Redis closed while it sat idle (a restart, CLIENT KILL, a
  proxy's idle timeout) is seen before the command is sent (it reads as ended, as the pool's
  own check does) and made anew. That check is a few system calls, each letting go of the GIL
  (another request's thread takes it: under load, a thread switch per call), so a read (a
  script registered with `register_read_script`, or one of RESENDABLE_COMMANDS) on a
  connection that answered in the last RECHECK_AFTER_S is sent without it: if the connection
  turns out closed, the read is sent again on a new one. A command that met a
  `ConnectionError` before it was sent whole is sent again on a new connection, twice at most,
  after a short pause. A write that was sent is never sent again: Redis may have run it and
  lost only the reply, and a write script run twice would answer 200 for a creation or count
  an increment twice; the caller gets the error (503, which a client may retry, knowing the
  write may have happened). So a write is always checked first. A `TimeoutError` is not
  retried either. The connection is dropped with it, so a late reply can never be read as the
  answer to the next command.
- scripts: `Script` objects send EVALSHA and, told NOSCRIPT (a new Redis, a restart, SCRIPT
  FLUSH), load the script and send it again, on the same thread's connection.
- fork safety: a connection made in another process is never used (a forked worker makes its
  own).

A thread's connection lives as long as the thread (granian ends idle threads after a while, and
their connections close with them), so a worker holds about one connection per thread that has
served a request lately: the places of server.admit, and the threads granian keeps around.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

import redis
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError

# As the client's Retry did: two more attempts after a dropped connection, 10 then 20 ms apart.
RETRIES = 2
RETRY_PAUSE_S = 0.01
# A busy thread uses its connection every few ms; an idle one is checked before a read.
RECHECK_AFTER_S = 0.1
# Commands safe to send again after a connection dropped under them: they only read, or (SCRIPT
# LOAD) do the same however often they run.
RESENDABLE_COMMANDS = frozenset(
    {"GET", "MGET", "PTTL", "EXISTS", "ZRANGE", "ZSCORE", "ZMSCORE", "ZCARD", "HGETALL", "PING"}
    | {"SCRIPT LOAD"}
)


class LeanRedis(redis.Redis):
    """`redis.Redis`, its commands sent on a per-thread connection (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own = threading.local()
        # Weakly: the connection of a thread that ended goes with it (redis-py closes it).
        self._made: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()
        self._read_scripts: set[str] = set()  # the SHA1s of scripts that only read

    def register_read_script(self, script: str) -> Script:
        """register_script for a script that only reads: sent again after a dropped
        connection, like a read command."""
        registered = self.register_script(script)
        self._read_scripts.add(registered.sha)
        return registered

    def thread_connection(self) -> AbstractConnection:
        """This thread's connection (made on first use)."""
        own = self._own
        connection: AbstractConnection | None = getattr(own, "connection", None)
        if connection is None or own.pid != os.getpid():
            pool = self.connection_pool
            connection = pool.connection_class(**pool.connection_kwargs)
            self._made.add(connection)
            own.connection, own.pid, own.answered_at = connection, os.getpid(), 0.0
        return connection

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.connection is not None:  # a single-connection client: redis-py's own way
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        command_name = args[0]
        own = self._own
        reads_only = self._reads_only(args)
        for attempt in range(RETRIES + 1):
            connection = self.thread_connection()
            try:
                if not reads_only or time.monotonic() - own.answered_at > RECHECK_AFTER_S:
                    _drop_if_closed(connection)
                packed = connection.pack_command(*args)  # type: ignore[no-untyped-call]
                connection.send_packed_command(packed, check_health=False)  # type: ignore[no-untyped-call]
            except ConnectionError:
                # Not sent: redis-py has closed the connection; the next attempt connects anew.
                if attempt == RETRIES:
                    raise
                time.sleep(RETRY_PAUSE_S * (attempt + 1))
                continue
            # Sent: the reply or the error; sent again only if it reads (the module docstring).
            try:
                reply = self.parse_response(connection, command_name, **options)  # type: ignore[no-untyped-call]
            except ConnectionError:
                # redis-py has closed the connection: the next attempt connects anew.
                if attempt == RETRIES or not reads_only:
                    raise
                continue
            own.answered_at = time.monotonic()
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def _reads_only(self, args: tuple[Any, ...]) -> bool:
        name = str(args[0]).upper()
        if name == "EVALSHA":
            return args[1] in self._read_scripts
        return name in RESENDABLE_COMMANDS

    def close(self) -> None:
        """Close every thread's connection and the pool's (a later command connects again,
        as redis-py's client does after close())."""
        for connection in list(self._made):
            connection.disconnect()  # type: ignore[no-untyped-call]
        super().close()


def _drop_if_closed(connection: AbstractConnection) -> None:
    """Disconnect a connection that Redis has closed (or that holds a stray reply), so that the
    command is sent on a new one rather than lost on this one. An idle connection has nothing
    to read: anything there (the end of the stream, an error) means it is done."""
    if getattr(connection, "_sock", None) is None:
        return  # not connected yet: sending connects
    try:
        stale = connection.can_read(timeout=0)
    except (ConnectionError, OSError):
        stale = True
    if stale:
        connection.disconnect()  # type: ignore[no-untyped-call]
