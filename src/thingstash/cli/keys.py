"""`thingstash keys create|list|revoke|reopen`: API keys, managed on the store itself.

The store is `--redis-url`, or the embedded server of `--data-dir`: the running one if the
service is up (found through its lock and the URL it wrote), else one started just for this
command and stopped after it.
"""

from __future__ import annotations

import click

from thingstash.cli.stores import open_store_of, store_options, when
from thingstash.core.keys import SCOPES, create_key


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
    with open_store_of(redis_url, data_dir) as store:
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
    with open_store_of(redis_url, data_dir) as store:
        records = store.list_keys()
    click.echo(f"{'ID':<12}  {'SCOPE':<5}  {'CREATED':<20}  {'LAST USED':<20}  PREFIX")
    for r in records:
        click.echo(
            f"{r.id:<12}  {r.scope:<5}  {when(r.created):<20}  {when(r.last_used):<20}  "
            f"{r.prefix or '(whole store)'}"
        )


@keys.command()
@click.argument("key_id")
@store_options
def revoke(key_id: str, redis_url: str | None, data_dir: str) -> None:
    """Revoke a key by its id; it stops working at once."""
    with open_store_of(redis_url, data_dir) as store:
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
    with open_store_of(redis_url, data_dir) as store:
        reopened = store.reopen()
    if not reopened:
        raise click.ClickException(
            "keys still exist: revoke them first (`thingstash keys list`, `keys revoke ID`)"
        )
    click.echo("the store is open: requests need no key until a key is created", err=True)
