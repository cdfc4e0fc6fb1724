"""What the commands that work on the store itself (`serve`, `keys`) share: the --redis-url and
--data-dir options, and the store's Redis, the embedded one started when none is given.

A door: may import anything, but loads the store and the embedded server only when called."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

if TYPE_CHECKING:
    from thingstash.serve.embedded import EmbeddedRedis

F = TypeVar("F", bound=Callable[..., object])


def store_options(redis_help: str, data_dir_help: str) -> Callable[[F], F]:
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
