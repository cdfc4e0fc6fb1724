"""The `thingstash` command line."""

from __future__ import annotations

import logging
import os

import click

from thingstash.cli.index import index
from thingstash.cli.keys import keys
from thingstash.cli.rules import rules
from thingstash.cli.stores import redis_or_embedded, store_options_with
from thingstash.core.config import ConfigError, Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """thingstash: an instant JSON store over HTTP."""


@main.command()
@click.option("--host", envvar="THINGSTASH_HOST", default="127.0.0.1", show_default=True)
@click.option(
    "--port", envvar="PORT", default=8080, type=click.IntRange(1, 65535), show_default=True
)
@store_options_with(
    "Use this Redis (redis://, rediss://, unix://) instead of an embedded one.",
    "Where the embedded Redis keeps its data.",
)
@click.option(
    "--firebase-port",
    envvar="THINGSTASH_FIREBASE_PORT",
    type=click.IntRange(1, 65535),
    default=None,
    help="Also serve the Firebase Realtime Database REST API on this port (docs/firebase.md).",
)
@click.option(
    "--public",
    is_flag=True,
    envvar="THINGSTASH_PUBLIC",
    help="Allow an open store on a non-loopback address.",
)
def serve(
    host: str,
    port: int,
    redis_url: str | None,
    data_dir: str,
    firebase_port: int | None,
    public: bool,
) -> None:
    """Serve the store over HTTP (with an embedded Redis unless --redis-url is given)."""
    from thingstash.core.keys import OpenStoreRefused, check_bind, is_loopback
    from thingstash.core.model import StorageUnavailable
    from thingstash.serve import firebase, server
    from thingstash.serve.embedded import Watchdog
    from thingstash.store import open_store
    from thingstash.web import accesslog

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    accesslog.to_stderr()  # the workers inherit it: one bare JSON line per request
    try:
        settings = Settings.from_env()  # refuse bad settings here, once, not in every worker
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    if settings.auth_emulator and not is_loopback(host):
        raise click.UsageError(
            f"THINGSTASH_AUTH_EMULATOR accepts unsigned tokens: it is for development on a "
            f"loopback address only, not {host}"
        )
    redis_url, embedded = redis_or_embedded(redis_url, data_dir, use_running=False)
    try:
        store = open_store(redis_url, settings.key_prefix)
        try:
            check_bind(host, public or settings.public, store)
        finally:
            store.close()
    except (OpenStoreRefused, StorageUnavailable) as error:
        if embedded is not None:
            embedded.stop()
        raise click.ClickException(str(error)) from None
    os.environ["THINGSTASH_REDIS_URL"] = redis_url
    # The workers check Host names and open-store access against the address bound.
    os.environ["THINGSTASH_HOST"] = host
    os.environ["THINGSTASH_SERVE_PID"] = str(os.getpid())
    if public:
        os.environ["THINGSTASH_PUBLIC"] = "1"
    where = f"embedded Redis in {embedded.data_dir}" if embedded else "Redis at " + redis_url
    click.echo(f"thingstash serving http://{host}:{port} ({where})", err=True)
    if firebase_port is not None:
        click.echo(
            f"thingstash serving Firebase clients on http://{host}:{firebase_port}", err=True
        )
    watchdog = Watchdog(embedded) if embedded is not None else None
    second = None
    try:
        with server.metrics_dir():
            if watchdog is not None:
                watchdog.start()
            if firebase_port is not None:
                second = firebase.start(host, firebase_port)
            server.run(host, port, settings=settings)
    finally:
        if second is not None:
            firebase.stop(second)
        if watchdog is not None:
            watchdog.stop()
        if embedded is not None:
            embedded.stop()


main.add_command(keys)
main.add_command(index)
main.add_command(rules)


def _add_client_commands() -> None:
    # get/put/patch/rm/ls/watch/export/import/bench talk to a server over HTTP (cli/client.py).
    from thingstash.cli import client as commands

    commands.register(main)


_add_client_commands()
