"""Who the rules judge, for both faces: a request's `Judged` (the rules' `auth` it is judged
as: a verified user, a signed-out one, or an admin acting as a user), the rules in force
(firebase/rules.py's RulesBook, one per app) and the ID token verifier (users/, one per app,
made on first use). Each face decides who is judged (web/auth.py, web/firebase/access.py) and
judges at its doors (web/rulesguard.py, web/firebase/guard.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g

from thingstash.firebase import judging
from thingstash.firebase.rules import RulesBook
from thingstash.rules.model import QueryInfo
from thingstash.rules.ruleset import Ruleset
from thingstash.users.tokens import TokenRejected, Verifier
from thingstash.web.context import settings, store


@dataclass(frozen=True, slots=True)
class Judged:
    """A request the rules judge, and the `auth` they see (None: signed out)."""

    auth: Any


def install(app: Flask) -> None:
    app.extensions["thingstash.rules"] = RulesBook()


def judged() -> Judged | None:
    """Whom the rules judge this request as; None when they do not judge it (a key, the admin)."""
    found: Judged | None = g.get("thingstash_judged")
    return found


def judge_as(who: Judged) -> None:
    g.thingstash_judged = who


def book() -> RulesBook:
    found: RulesBook = current_app.extensions["thingstash.rules"]
    return found


def rules_in_force() -> Ruleset | None:
    """The store's rules (one round trip to learn their version); None when it has none."""
    return book().current(store())


def is_token(credential: str) -> bool:
    """A JWT (three dot-separated parts), not an API key (`tsk_...`)."""
    return credential.count(".") == 2 and not credential.startswith("tsk_")


def verify(token: str) -> Any:
    """The rules' `auth` of the user an ID token proves; TokenRejected saying why not (also when
    the store is configured to verify none)."""
    extensions = current_app.extensions
    if "thingstash.users" not in extensions:
        extensions["thingstash.users"] = Verifier.from_settings(settings())
    verifier: Verifier | None = extensions["thingstash.users"]
    if verifier is None:
        raise TokenRejected(
            "this store takes no ID tokens: set THINGSTASH_AUTH_JWKS_URL (with its issuer and "
            "audience) or THINGSTASH_FIREBASE_PROJECT"
        )
    return verifier.verify(token).auth


RECHECK_SECONDS = 1.0


def expires_at(who: Judged) -> float | None:
    """When the ID token a judged request came with expires (`auth.token.exp`), if it says."""
    token = who.auth.get("token") if isinstance(who.auth, dict) else None
    expiry = token.get("exp") if isinstance(token, dict) else None
    if isinstance(expiry, int | float) and not isinstance(expiry, bool):
        return float(expiry)
    return None


def still_reads(
    where: tuple[str, ...], query: QueryInfo | None, keys: Callable[[], bool], is_open: bool
) -> Callable[[], bool]:
    """For a stream of the location `where`, made during its request: `keys` (its key still
    holds; `is_open`: whether the store was open, what a judged stream may do without rules)
    and, for a judged request, its ID token not yet expired and the rules in force still
    letting it read there (asked again at most every RECHECK_SECONDS): a stream whose read is
    no longer allowed ends, on either face."""
    who = judged()
    if who is None:
        return keys
    the_book, the_store, config = book(), store(), settings()
    expiry = expires_at(who)
    last = [time.monotonic(), True]

    def allowed() -> bool:
        if not keys() or (expiry is not None and time.time() >= expiry):
            return False
        now = time.monotonic()
        if now - float(last[0]) < RECHECK_SECONDS:
            return bool(last[1])
        rules = the_book.current(the_store)
        if rules is None:
            verdict = is_open
        else:
            tree = judging.StoreTree(
                the_store, config.firebase_max_read, config.firebase_max_folders
            )
            verdict = judging.may_read(rules, tree, where, who.auth, query).allowed
        last[0], last[1] = now, verdict
        return verdict

    return allowed
