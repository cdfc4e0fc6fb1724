"""The one way the commands that work on the store itself (`serve`, `keys`, `index`) open it: the
--redis-url and --data-dir options, the store's Redis (the embedded one started when none is
given), and `open_store_of` for the commands that use the store and go.

A door: may import anything, but loads the store and the embedded server only when called."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import click

from thingstash.core.config import ConfigError, Settings

if TYPE_CHECKING:
    from thingstash.core.store import Store
    from thingstash.serve.embedded import EmbeddedRedis

F = TypeVar("F", bound=Callable[..., object])


def store_options_with(redis_help: str, data_dir_help: str) -> Callable[[F], F]:
    """--redis-url (and the variables Heroku and friends set) and --data-dir, on a command."""

    def decorate(command: F) -> F:
        command = click.option(
            "--data-dir",
            envvar="THINGSTASH_DATA_DIR",
            default=".thingstash",
            show_default=True,
            type=click.Path(file_okay=False),
            help=data_dir_help,
        )(command)
        return click.option(
            "--redis-url",
            envvar=["THINGSTASH_REDIS_URL", "REDIS_URL", "REDISCLOUD_URL"],
            help=redis_help,
        )(command)

    return decorate


def redis_or_embedded(
    redis_url: str | None, data_dir: str, use_running: bool
) -> tuple[str, EmbeddedRedis | None]:
    """The URL of the store's Redis: `redis_url`, else (with `use_running`) the embedded one
    already serving `data_dir`, else one started now (returned too: the caller stops it)."""
    from thingstash.serve.embedded import EmbeddedError, EmbeddedRedis

    url = redis_url or (EmbeddedRedis.running_url(data_dir) if use_running else None)
    if url is not None:
        return url, None
    embedded = EmbeddedRedis(data_dir)
    try:
        return embedded.start(), embedded
    except EmbeddedError as error:
        raise click.ClickException(str(error)) from None


# The options of the commands that use the store and go (`keys`, `index`).
store_options = store_options_with(
    "The store's Redis (else the embedded one of --data-dir).",
    "The embedded Redis's data, running or not.",
)


@contextmanager
def open_store_of(redis_url: str | None, data_dir: str) -> Iterator[Store]:
    """The store of `--redis-url`, else of the embedded Redis of `data_dir` (the running one, or
    one started for this command and stopped after it); closed when the command is done."""
    from thingstash.core.model import StorageUnavailable
    from thingstash.store import open_store

    try:
        prefix = Settings.from_env().key_prefix
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    url, embedded = redis_or_embedded(redis_url, data_dir, use_running=True)
    store = open_store(url, prefix)
    try:
        yield store
    except StorageUnavailable as error:
        raise click.ClickException(f"the store cannot be reached: {error}") from None
    finally:
        store.close()
        if embedded is not None:
            embedded.stop()


def when(seconds: int | None) -> str:
    """A time as the commands print it (UTC, ISO 8601), or "never"."""
    if seconds is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
