"""`thingstash rules deploy FILE | get | test FILE CASES`: the store's rules document.

`deploy` and `get` work on the store itself, as `keys` does (`--redis-url`, or the embedded
server of `--data-dir`, running or not): `deploy` checks and stores the document exactly as
`PUT /_rules` does (firebase/rules.py: a document that does not parse or type-check is refused
naming the place, and the rules in force stay), `get` prints the stored one.

`test` needs no store: it runs cases in the rules yardstick's format (rules/cases.py: JSON
Lines, each case a list of steps) against the rules of FILE, offline, so rules are tested as
code is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from thingstash.cli.stores import open_store_of, store_options
from thingstash.core.config import ConfigError, Settings


@click.group()
def rules() -> None:
    """Manage and test the store's rules (who may read and write what: Firebase's rules)."""


def _read_rules_file(path: str) -> tuple[str, Any]:
    """FILE's text and its document (Firebase's dialect of JSON); a usage error naming the
    place when it does not parse or compile."""
    from thingstash.firebase import rules as documents
    from thingstash.firebase.errors import BadRequest

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise click.UsageError(f"cannot read {path}: {error}") from None
    try:
        document = documents.parse_rules_text(text)
        documents.check_rules(document)
    except BadRequest as refused:
        raise click.ClickException(f"{path}: {refused.message}") from None
    return text, document


@rules.command()
@click.argument("file", type=click.Path(dir_okay=False))
@store_options
def deploy(file: str, redis_url: str | None, data_dir: str) -> None:
    """Check the rules document FILE (JSON with comments) and make it the store's rules, in
    force from the next request (within a second in every server process); its `.indexOn`s
    declare indexes. A document that does not compile changes nothing."""
    from thingstash.firebase import rules as documents
    from thingstash.firebase.errors import BadRequest

    _, document = _read_rules_file(file)
    try:
        max_ttl = Settings.from_env().max_ttl
    except ConfigError as error:
        raise click.UsageError(str(error)) from None
    with open_store_of(redis_url, data_dir) as store:
        try:
            declared = documents.write_rules(store, document, max_ttl)
        except BadRequest as refused:
            raise click.ClickException(f"{file}: {refused.message}") from None
    for folder, field in declared:
        click.echo(f"index on {folder or '/'} by {field} (from .indexOn)", err=True)
    click.echo(f"deployed the rules of {file}", err=True)


@rules.command()
@store_options
def get(redis_url: str | None, data_dir: str) -> None:
    """Print the store's rules document (as stored: JSON, without the comments)."""
    from thingstash.core import documents
    from thingstash.firebase.reading import RULES_PATH

    with open_store_of(redis_url, data_dir) as store:
        thing = store.get(RULES_PATH)
    if thing is None:
        raise click.ClickException("this store has no rules document (`thingstash rules deploy`)")
    document = documents.loads(thing.body)
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode("utf-8"))


def _against(case: dict[str, Any], document: Any) -> dict[str, Any]:
    """`case` with FILE's rules in force: each `rules` step becomes the deploy of `document`
    (expected to be accepted); a case without one gets it as its first step."""
    deploy_step = {"op": "rules", "rules": document, "expect": "accepted"}
    steps = case.get("steps")
    if not isinstance(steps, list):
        raise ValueError("a case has a list of steps")
    replaced = [
        deploy_step if isinstance(step, dict) and step.get("op") == "rules" else step
        for step in steps
    ]
    if deploy_step not in replaced:
        replaced.insert(0, deploy_step)
    return {**case, "steps": replaced}


@rules.command(name="test")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("cases", type=click.File("rb"))
def test_(file: str, cases: Any) -> None:
    """Run the CASES (a file of JSON Lines, `-` for stdin) against the rules of FILE, offline.

    A case is the rules yardstick's: `{"id": ..., "steps": [...]}`, each step
    `{"op": "put" | "patch" | "delete", "path": "users/ada", "value": {...}, "auth": "admin" |
    null | {"uid": ...}, "expect": "allow" | "deny"}` or `{"op": "get", "path": ..., "auth":
    ..., "query": {"limitToFirst": 10}, "expect": ...}` (a write as the admin seeds the
    data; rules/cases.py has the whole format). Every
    `{"op": "rules", ...}` step is replaced by FILE's rules (a case without one starts with
    them), so the cases recorded against any rules test yours.

    Prints each failing step, then "N passed, M failed"; exits 1 when any failed, 2 when FILE
    does not compile or a line is not a case."""
    from thingstash.rules.cases import run_cases

    try:
        _, document = _read_rules_file(file)
    except click.ClickException as error:
        click.echo(f"Error: {error.format_message()}", err=True)
        sys.exit(2)
    lines: list[str] = []
    for number, raw in enumerate(cases, 1):
        if not raw.strip():
            continue
        try:
            case = orjson.loads(raw)
            if not isinstance(case, dict):
                raise ValueError("a case is a JSON object")
            lines.append(orjson.dumps(_against(case, document)).decode("utf-8"))
        except (orjson.JSONDecodeError, ValueError) as error:
            click.echo(f"Error: {cases.name} line {number}: {error}", err=True)
            sys.exit(2)
    passed, failures = run_cases(lines)
    for failure in failures:
        click.echo(f"FAIL {failure}")
    click.echo(f"{passed} passed, {len(failures)} failed")
    if failures:
        sys.exit(1)
