"""Rules: the rules document at `/.settings/rules.json` (GET and PUT), as Firebase's REST API
answers it; what it says is firebase/rules.py's (where the rules evaluator lands)."""

from __future__ import annotations

from flask import Response

from thingstash.firebase import rules
from thingstash.firebase.errors import NotAllowed
from thingstash.web.context import settings, store
from thingstash.web.firebase.protocol import answer, body


def rules_document(method: str) -> Response:
    if method == "GET":
        return answer(rules.read_rules(store()))
    if method != "PUT":
        raise NotAllowed("The rules document answers GET and PUT")
    document = body()
    rules.write_rules(store(), document, settings().max_ttl)
    return answer({"status": "ok"})
