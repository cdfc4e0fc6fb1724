"""The rules at the native face's doors: the checks its views make before they read or write
(`check_read`, `check_write`), and the one a stream makes as it goes (`still_allowed`). Whether
the store has a rules document at all is auth.py's (`has_rules`, remembered per process).

Who is judged is auth.py's (`_check` sets web.users' `Judged`); a request the rules do not judge
(an API key, the admin) is never stopped here. A native path is a location of the Firebase tree
(docs/firebase.md): the thing `a/b` is ("a", "b"), the folder `a/` is ("a",), `` the root.

Denied: `401` when the request sent no credential, `403` otherwise; problem+json titled
`permission denied`, the verdict's reason as its detail. A judged request on a store with no
rules document is judged as before rules existed: allowed on an open store, else denied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from flask import request

from thingstash.core import documents, retry
from thingstash.core.model import GuardChanged, TooMuchContention
from thingstash.core.queries import Query
from thingstash.core.store import Store
from thingstash.firebase import judging
from thingstash.firebase.guarding import Guarded, Recording
from thingstash.firebase.mapping import Location
from thingstash.rules.model import QueryInfo
from thingstash.rules.ruleset import Ruleset
from thingstash.web import auth, users
from thingstash.web.context import settings, store
from thingstash.web.errors import Problem
from thingstash.web.users import book, judged

T = TypeVar("T")
TITLE = "permission denied"


# -- paths and queries as the rules see them ----------------------------------------------------


def location(path: str) -> Location:
    """A native path's location: `a/b` is ("a", "b"), `a/` is ("a",), `` the root."""
    return tuple(part for part in path.split("/") if part)


def query_info(query: Query) -> QueryInfo:
    """A native query as Firebase's `query.*`: order by name is orderByKey, by a field
    orderByChild (its segments joined by `/`), `limit` limitToFirst (limitToLast with `desc`),
    `start_at`, `end_at` and `equal_to` as sent; a count shows what a plain read shows."""
    if query.count or query.field is None:
        return judging.PLAIN_READ  # as a plain read shows it: ordered by key
    args = request.args

    def given(name: str) -> Any:
        raw = args.get(name)
        return documents.loads(raw.encode("utf-8", "surrogatepass")) if raw is not None else None

    field = query.field
    child = None if field.is_name else ("/".join(field.segments) or field.text)
    return QueryInfo(
        order_by_key=field.is_name,
        order_by_child=child,
        start_at=given("start_at"),
        end_at=given("end_at"),
        equal_to=given("equal_to"),
        limit_to_first=None if query.desc else query.limit,
        limit_to_last=query.limit if query.desc else None,
    )


# -- the checks ---------------------------------------------------------------------------------


def _denied(reason: str) -> Problem:
    """401 when the request sent no credential (signing in may help), 403 otherwise."""
    if request.environ.get("HTTP_AUTHORIZATION") is None:
        return Problem(401, TITLE, reason, {"WWW-Authenticate": 'Bearer realm="thingstash"'})
    return Problem(403, TITLE, reason)


def _rules_or_deny() -> Ruleset | None:
    """The rules to judge by; None when the request passes without them (an open store with no
    rules document); a denial when it cannot (a closed one)."""
    rules = book().current(store())
    if rules is None:
        if auth.store_is_open():
            return None
        raise _denied("this store has no rules document: only API keys may use it")
    return rules


def _tree() -> judging.StoreTree:
    config = settings()
    return judging.StoreTree(store(), config.firebase_max_read, config.firebase_max_folders)


def check_read(path: str, query: QueryInfo | None = None) -> None:
    """May this request read at `path` (a thing, or a folder: its listing, query or watch)?"""
    who = judged()
    if who is None:
        return
    rules = _rules_or_deny()
    if rules is None:
        return
    verdict = judging.may_read(rules, _tree(), location(path), who.auth, query)
    if not verdict.allowed:
        raise _denied(verdict.reason or f"the rules do not allow reading /{path}")


def check_write(writes: Sequence[tuple[Location, Any]]) -> None:
    """May this request make `writes` ((location, new value or None) pairs: all or none)? For
    a write that is not made in the step that checks (`write` makes the check and the write
    one step)."""
    who = judged()
    if who is None or not writes:
        return
    rules = _rules_or_deny()
    if rules is None:
        return
    _judge(rules, _tree(), writes, who.auth)


def _judge(
    rules: Ruleset, tree: judging.StoreTree, writes: Sequence[tuple[Location, Any]], auth: Any
) -> None:
    verdict = judging.may_write(rules, tree, writes, auth)
    if not verdict.allowed:
        where = "/" + "/".join(writes[0][0]) if writes else "/"
        raise _denied(verdict.reason or f"the rules do not allow writing {where}")


Writes = list[tuple[Location, Any]]
# What a write reads and would write, given a store to read through: the writes the rules judge,
# and the write itself, made on the store it is given.
Plan = Callable[[Store], tuple[Writes, Callable[[Store], T]]]


def write(plan: Plan[T], each: Callable[[int], str] | None = None) -> T:
    """The write `plan` makes, if this request may: the check and the write are one step.
    `plan` reads what the write is made from (a thing an increment or a merge starts from)
    through the store it is given, which records it, as judging records what the rules read;
    its write lands only if none of that changed meanwhile (firebase/guarding.py: the first
    write carries the guards), else it is planned and judged again on what is stored now.
    `each` given: every write is judged alone (a denial's detail begins with `each(i)`, naming
    the i-th), not as one multi-location update."""
    who = judged()
    rules = _rules_or_deny() if who is not None else None
    if who is None or rules is None:
        _, make = plan(store())
        return make(store())
    config = settings()
    path = ""
    for attempt in range(retry.ATTEMPTS):
        recording = Recording(store())
        writes, make = plan(recording.as_store())
        path = "/".join(writes[0][0]) if writes else ""
        tree = judging.StoreTree(
            recording.as_store(), config.firebase_max_read, config.firebase_max_folders
        )
        if each is None:
            _judge(rules, tree, writes, who.auth)
        else:
            for number, one in enumerate(writes):
                try:
                    _judge(rules, tree, [one], who.auth)
                except Problem as denied:
                    denied.detail = f"{each(number)}: {denied.detail}"
                    raise
        try:
            with Guarded(store(), recording.guards()) as guarded:
                return make(guarded.as_store())
        except GuardChanged:
            retry.pause(attempt)
    raise TooMuchContention(path)


def is_judged() -> bool:
    return judged() is not None


def thing_value(doc: Mapping[str, Any]) -> Any:
    """A thing's body (reserved fields taken out) as the Firebase value it is: a `.value`
    wrapper unwrapped, an empty object null."""
    if ".value" in doc:
        return doc[".value"]
    return dict(doc) or None


def patch_writes(path: str, merge: Mapping[str, Any]) -> list[tuple[Location, Any]]:
    """A merge patch of the thing at `path` as the writes of its leaves: each non-object member
    (null deletes) at its place; what the merge leaves elsewhere is untouched."""
    writes: list[tuple[Location, Any]] = []

    def walk(at: Location, value: Mapping[str, Any]) -> None:
        for key, member in value.items():
            if isinstance(member, dict) and member and documents.SERVER_VALUE not in member:
                walk((*at, key), member)
            else:
                writes.append(((*at, key), member))

    walk(location(path), merge)
    return writes


def still_allowed(path: str, query: QueryInfo | None = None) -> Callable[[], bool]:
    """For a stream of `path`, made during its request: users.still_reads (its key still holds;
    for a judged request, its token unexpired and the rules still letting it read there)."""
    return users.still_reads(location(path), query, auth.still_allowed(), auth.store_is_open())
