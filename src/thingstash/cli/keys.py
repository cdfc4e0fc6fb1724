"""`thingstash keys create|list|revoke|reopen`: API keys, managed on the store itself.

The store is `--redis-url`, or the embedded server of `--data-dir`: the running one if the
service is up (found through its lock and the URL it wrote), else one started just for this
command and stopped after it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from thingstash.cli.stores import redis_or_embedded
from thingstash.cli.stores import store_options as options
from thingstash.core.config import ConfigError, Settings
from thingstash.core.keys import SCOPES, create_key

if TYPE_CHECKING:
    from thingstash.core.store import Store


store_options = options(
    "The store's Redis (else the embedded one of --data-dir).",
    "The embedded Redis's data, running or not.",
)


@contextmanager
def open_keys_store(redis_url: str | None, data_dir: str) -> Iterator[Store]:
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


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@click.group()
def keys() -> None:
    """Manage API keys (stored hashed; a key is shown once, when it is created)."""


@keys.command()
@click.option("--scope", type=click.Choice(SCOPES), required=True)
@click.option("--prefix", default="", help="Limit the key to paths starting with this.")
@store_options
def create(scope: str, prefix: str, redis_url: str | None, data_dir: str) -> None:
    """Create a key and print it (it cannot be shown again)."""
    if prefix.startswith("/"):
        raise click.UsageError("--prefix is a path without a leading /, e.g. sensors/")
    with open_keys_store(redis_url, data_dir) as store:
        record, key = create_key(store, scope, prefix)
    click.echo(
        f"created key {record.id} (scope {scope}, prefix {prefix or '(whole store)'}); "
        "it is shown only now:",
        err=True,
    )
    click.echo(key)


@keys.command(name="list")
@store_options
def list_(redis_url: str | None, data_dir: str) -> None:
    """List keys: id, scope, prefix, created, last used (never the key)."""
    with open_keys_store(redis_url, data_dir) as store:
        records = store.list_keys()
    click.echo(f"{'ID':<12}  {'SCOPE':<5}  {'CREATED':<20}  {'LAST USED':<20}  PREFIX")
    for r in records:
        click.echo(
            f"{r.id:<12}  {r.scope:<5}  {_when(r.created):<20}  {_when(r.last_used):<20}  "
            f"{r.prefix or '(whole store)'}"
        )


@keys.command()
@click.argument("key_id")
@store_options
def revoke(key_id: str, redis_url: str | None, data_dir: str) -> None:
    """Revoke a key by its id; it stops working at once."""
    with open_keys_store(redis_url, data_dir) as store:
        removed = store.revoke_key(key_id)
    if not removed:
        raise click.ClickException(f"there is no key with id {key_id!r}")
    click.echo(f"revoked key {key_id}", err=True)


@keys.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@store_options
def reopen(yes: bool, redis_url: str | None, data_dir: str) -> None:
    """Open a store whose keys are all revoked: anyone who can reach it may then do anything.

    A store that has had a key stays closed after its last key is revoked; only this command
    opens it again (and a server on a non-loopback address still needs --public to serve it
    open)."""
    if not yes:
        click.confirm("Open this store to anyone who can reach it, with no key at all?", abort=True)
    with open_keys_store(redis_url, data_dir) as store:
        reopened = store.reopen()
    if not reopened:
        raise click.ClickException(
            "keys still exist: revoke them first (`thingstash keys list`, `keys revoke ID`)"
        )
    click.echo("the store is open: requests need no key until a key is created", err=True)
