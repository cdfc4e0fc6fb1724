"""Rules: the rules document (`/.settings/rules.json`): stored as the thing `_firebase.rules`, its
`.indexOn`s declared as indexes of the query engine. What the rules say of reads and writes is
kept, not yet enforced.

No Flask, no Redis: the web face's rules (web/firebase/rules.py) call these. The rules
evaluator lands here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from thingstash.core import documents, ordering
from thingstash.core.store import Store
from thingstash.firebase.errors import BadRequest
from thingstash.firebase.reading import RULES_PATH

DEFAULT_RULES: dict[str, Any] = {"rules": {".read": "auth != null", ".write": "auth != null"}}


def read_rules(store: Store) -> Any:
    thing = store.get(RULES_PATH)
    return documents.loads(thing.body) if thing is not None else DEFAULT_RULES


def _index_declarations(rules: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(folder pattern, field) for every `.indexOn` in a rules tree (`$name` -> `*`)."""
    if not isinstance(rules, dict):
        return
    for key, child in rules.items():
        if key == ".indexOn":
            fields = [child] if isinstance(child, str) else child
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise BadRequest(".indexOn must be a string or an array of strings")
            folder = "".join(("*" if p.startswith("$") else p) + "/" for p in path)
            for name in fields:
                if name not in ("$key", ".key"):  # keys order without an index
                    yield folder, name
        elif not key.startswith("."):
            yield from _index_declarations(child, (*path, key))


def write_rules(store: Store, document: Any, max_ttl: int) -> list[tuple[str, str]]:
    """Store a rules document and declare an index for each of its `.indexOn`s (what the
    rules say about reads and writes is kept, not enforced). Returns the indexes declared."""
    if not isinstance(document, dict) or not isinstance(document.get("rules"), dict):
        raise BadRequest('The rules document must be an object with a "rules" object')
    declared = []
    for folder, name in _index_declarations(document["rules"]):
        try:
            checked = ordering.parse_field(name)
        except ordering.BadField as error:
            raise BadRequest(f".indexOn {name!r}: {error}") from None
        declared.append((folder, checked.text))
    store.put(RULES_PATH, documents.dumps(document), max_ttl)
    for folder, name in declared:
        store.create_index(folder, name)
    return declared
