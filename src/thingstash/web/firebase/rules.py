"""Rules: the rules document at `/.settings/rules.json` (GET and PUT, the admin's), as
Firebase's REST API answers it: sent in Firebase's dialect of JSON (comments, multi-line
strings), checked and stored by firebase/rules.py; judged by guard.py."""

from __future__ import annotations

from flask import Response

from thingstash.firebase import rules
from thingstash.firebase.errors import NotAllowed
from thingstash.web.context import settings, store
from thingstash.web.firebase import guard
from thingstash.web.firebase.protocol import answer, raw_text


def rules_document(method: str) -> Response:
    """GET or PUT the rules document: the admin's (a key, `owner`), never a user's, nor anyone's
    the rules judge (who may change the rules once there are some)."""
    guard.check_admin()
    if method == "GET":
        return answer(rules.read_rules(store()))
    if method != "PUT":
        raise NotAllowed("The rules document answers GET and PUT")
    document = rules.parse_rules_text(raw_text())
    rules.write_rules(store(), document, settings().max_ttl)
    return answer({"status": "ok"})
