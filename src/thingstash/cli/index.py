"""`thingstash index create|list|drop`: query indexes, declared on the store itself (as `keys`:
`--redis-url`, or the embedded server of `--data-dir`, running or not).

`create` declares the index, then takes in what is already stored, here, in the same bounded
batches a running service uses, showing its progress (a service running beside it shares the
work through a lease); interrupted, it leaves the rest to the service. `--no-wait` only
declares it.
"""

from __future__ import annotations

import time

import click

from thingstash.cli.stores import open_store_of, store_options, when


@click.group()
def index() -> None:
    """Manage query indexes (which fields of which folders are ordered for queries)."""


@index.command()
@click.argument("folder")
@click.argument("field")
@click.option("--no-wait", is_flag=True, help="Declare it; let the running service build it.")
@store_options
def create(folder: str, field: str, no_wait: bool, redis_url: str | None, data_dir: str) -> None:
    """Index FIELD (`score`, `stats/level`, `$updated`) of the things in FOLDER (one segment
    may be `*`: `games/*/scores/`)."""
    from thingstash.core import indexes
    from thingstash.core.queries import BadQuery

    try:
        folder = indexes.parse_index_folder(folder)
        field = indexes.parse_index_field(field).text
    except BadQuery as error:
        raise click.UsageError(error.detail) from None
    with open_store_of(redis_url, data_dir) as store:
        declared, created = store.create_index(folder, field)
        click.echo(
            f"{'created' if created else 'already declared:'} index {declared.id} "
            f"({folder or '/'} by {field})",
            err=True,
        )
        if no_wait:
            return
        started = time.monotonic()
        while True:
            state = next((i.state for i in store.indexes() if i.id == declared.id), None)
            if state is None:
                raise click.ClickException("the index was dropped meanwhile")
            if state == indexes.READY:
                click.echo(f"ready in {time.monotonic() - started:.1f} s", err=True)
                return
            if store.build_indexes() == 0:
                time.sleep(0.2)  # another process holds the build's lease


@index.command(name="list")
@store_options
def list_(redis_url: str | None, data_dir: str) -> None:
    """List indexes: id, state, created, folder, field."""
    with open_store_of(redis_url, data_dir) as store:
        declared = store.indexes()
    click.echo(f"{'ID':<12}  {'STATE':<8}  {'CREATED':<20}  FOLDER  FIELD")
    for i in declared:
        click.echo(f"{i.id:<12}  {i.state:<8}  {when(i.created):<20}  {i.folder or '/'}  {i.field}")


@index.command()
@click.argument("index_id")
@store_options
def drop(index_id: str, redis_url: str | None, data_dir: str) -> None:
    """Drop an index by its id (queries on a small folder are then computed on the fly)."""
    with open_store_of(redis_url, data_dir) as store:
        dropped = store.drop_index(index_id)
    if dropped is None:
        raise click.ClickException(f"there is no index with id {index_id!r}")
    click.echo(f"dropped index {index_id}", err=True)
