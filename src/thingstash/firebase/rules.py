"""Rules: the rules document (`/.settings/rules.json`, `/_rules`): checked (rules/ parses and
type-checks it: a bad one is refused and the rules in force stay), stored as the thing
`_firebase.rules`, its `.indexOn`s declared as indexes of the query engine; and the rules in
force, compiled once per version and process (`RulesBook`). Judging requests by them is
judging.py's.

No Flask, no Redis: the web faces call these.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from thingstash.core import documents, ordering
from thingstash.core.model import StorageUnavailable
from thingstash.core.store import Store
from thingstash.firebase.errors import BadRequest
from thingstash.firebase.reading import RULES_PATH
from thingstash.rules.dialect import parse_document
from thingstash.rules.model import RulesError
from thingstash.rules.ruleset import Ruleset, compile_rules

DEFAULT_RULES: dict[str, Any] = {"rules": {".read": "auth != null", ".write": "auth != null"}}


def read_rules(store: Store) -> Any:
    thing = store.get(RULES_PATH)
    return documents.loads(thing.body) if thing is not None else DEFAULT_RULES


def parse_rules_text(text: str) -> Any:
    """A rules document as sent: Firebase's dialect of JSON (comments, multi-line strings)."""
    try:
        return parse_document(text)
    except RulesError as error:
        raise BadRequest(f"The rules document does not parse: {error}") from None


def check_rules(document: Any) -> Ruleset:
    """The document compiled; BadRequest naming the place when it does not parse or type-check."""
    try:
        return compile_rules(document)
    except RulesError as error:
        raise BadRequest(f"The rules do not compile: {error}") from None


# How long a process goes on with the rules it last learned before asking the store again; a
# deploy answers only after this long, so by then every process judges by the new document.
CHECK_SECONDS = 0.05


class RulesBook:
    """The rules in force, as this process knows them: compiled once per version of the stored
    document, whose version is asked of the store at most every CHECK_SECONDS (one round trip
    then, none on the requests between). `write_rules` answers only after CHECK_SECONDS, so a
    deployed document is in force in every process by the time its deploy answers. A stored
    document that no longer compiles (stored by an older version) denies everything it would
    judge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._version: str | None = None
        self._rules: Ruleset | None = None

    def current(self, store: Store) -> Ruleset | None:
        """The rules in force; None when the store has no rules document."""
        now = time.monotonic()
        with self._lock:
            if now - self._checked_at < CHECK_SECONDS:
                return self._rules
        try:
            version = store.versions([RULES_PATH]).get(RULES_PATH)
        except StorageUnavailable:
            with self._lock:
                # Redis away: this request fails (503); the others of the next CHECK_SECONDS go
                # on with what was known rather than each waiting on Redis here first.
                if self._checked_at != float("-inf"):
                    self._checked_at = now
            raise
        if version is None:
            compiled = None
        elif version == self._version:
            compiled = self._rules
        else:
            thing = store.get(RULES_PATH)
            version = thing.version if thing is not None else None
            compiled = _compiled(thing.body) if thing is not None else None
        with self._lock:
            self._version, self._rules, self._checked_at = version, compiled, now
        return compiled

    def forget(self) -> None:
        """Ask the store on the next `current()` (this process changed the rules)."""
        with self._lock:
            self._checked_at = float("-inf")


def _compiled(body: bytes) -> Ruleset:
    try:
        return compile_rules(documents.loads(body))
    except RulesError:
        return compile_rules({"rules": {}})  # nothing granted: every judged request denied


def write_rules(store: Store, document: Any, max_ttl: int) -> list[tuple[str, str]]:
    """Check and store a rules document (BadRequest naming the place when it does not compile:
    nothing stored) and declare an index for each of its `.indexOn`s. Returns the indexes
    declared."""
    if not isinstance(document, dict) or not isinstance(document.get("rules"), dict):
        raise BadRequest('The rules document must be an object with a "rules" object')
    declared = []
    for path, name in check_rules(document).index_declarations():
        if name in ("$key", ".key"):
            continue  # keys order without an index
        folder = "".join(("*" if part.startswith("$") else part) + "/" for part in path)
        try:
            checked = ordering.parse_field(name)
        except ordering.BadField as error:
            raise BadRequest(f".indexOn {name!r}: {error}") from None
        declared.append((folder, checked.text))
    store.put(RULES_PATH, documents.dumps(document), max_ttl)
    for folder, name in declared:
        store.create_index(folder, name)
    time.sleep(CHECK_SECONDS)  # every process's RulesBook has asked again by now
    return declared
