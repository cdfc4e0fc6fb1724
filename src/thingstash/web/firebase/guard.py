"""The rules at the Firebase face's doors: who a request is for the rules (`judged`: its auth,
set by access.py when the rules judge it), and the checks the verbs make before they read or
write (`check_read`, `check_write`). A request the rules do not judge (an API key, the
emulator's `owner`) is never stopped here.

Denied: Firebase's `401 {"error": "Permission denied"}`. A judged request on a store with no
rules document is judged as before rules existed: allowed on an open store, else denied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import request

from thingstash.core import retry
from thingstash.core.model import GuardChanged, TooMuchContention
from thingstash.core.store import Store
from thingstash.firebase import judging
from thingstash.firebase.errors import PermissionDenied
from thingstash.firebase.guarding import Guarded, Recording
from thingstash.firebase.mapping import Location
from thingstash.rules.ruleset import Ruleset
from thingstash.web import auth, users
from thingstash.web.context import settings, store
from thingstash.web.users import Judged, book, judged

DENIED = "Permission denied"
T = TypeVar("T")


def _rules_or_deny(who: Judged) -> Ruleset | None:
    """The rules to judge by; None when the request passes without them (an open store with no
    rules document); PermissionDenied when it cannot (a closed one)."""
    rules = book().current(store())
    if rules is None:
        if auth.store_is_open():
            return None
        raise PermissionDenied(DENIED)
    return rules


def _tree() -> judging.StoreTree:
    config = settings()
    return judging.StoreTree(store(), config.firebase_max_read, config.firebase_max_folders)


def check_admin() -> None:
    """Only the admin (not judged) may do this once the store has rules; before, an open store
    lets anyone, as it always did."""
    who = judged()
    if who is not None and _rules_or_deny(who) is not None:
        raise PermissionDenied(DENIED)


def check_read(location: Location) -> None:
    """May this request read `location` (with the query its parameters ask)?"""
    who = judged()
    if who is None:
        return
    rules = _rules_or_deny(who)
    if rules is None:
        return
    query = judging.query_info(request.args.to_dict(flat=False))
    verdict = judging.may_read(rules, _tree(), location, who.auth, query)
    if not verdict.allowed:
        raise PermissionDenied(DENIED)


def write(writes: Sequence[tuple[Location, Any]], make: Callable[[Store], T]) -> T:
    """`make(store)` (the write), if this request may make `writes` (all of them: a
    multi-path update is all or nothing): the check and the write are one step. What the
    rules read is recorded and guards the write's first step (firebase/guarding.py): if any of
    it changed meanwhile, nothing is written and the rules judge again on what is now."""
    who = judged()
    if who is None:
        return make(store())
    rules = _rules_or_deny(who)
    if rules is None:
        return make(store())
    config = settings()
    for attempt in range(retry.ATTEMPTS):
        recording = Recording(store())
        tree = judging.StoreTree(
            recording.as_store(), config.firebase_max_read, config.firebase_max_folders
        )
        if not judging.may_write(rules, tree, writes, who.auth).allowed:
            raise PermissionDenied(DENIED)
        try:
            with Guarded(store(), recording.guards()) as guarded:
                return make(guarded.as_store())
        except GuardChanged:
            retry.pause(attempt)
    raise TooMuchContention("/".join(writes[0][0]) if writes else "")


def still_allowed(location: Location) -> Callable[[], bool]:
    """For a stream of `location`, made during its request: users.still_reads (its key still
    holds; for a judged request, its token unexpired and the rules still letting it read
    there, with the query its parameters ask)."""
    query = judging.query_info(request.args.to_dict(flat=False))
    return users.still_reads(location, query, auth.still_allowed(), auth.store_is_open())
