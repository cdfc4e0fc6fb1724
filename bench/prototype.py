"""The original prototype's behaviour, reimplemented faithfully as the benchmark's reference.

One Redis hash per thing (the object's top-level fields, values as Redis strings, so types are
lost as they were then), written as DEL + HMSET + EXPIRE: three round trips per PUT; a GET is
HGETALL + TTL, two more. Flask with its stdlib JSON, served as it would have been deployed:
`gunicorn -w 4` (sync workers). Kept small on purpose: it is a yardstick, not a product.
"""

from __future__ import annotations

import json
import os
import time

import redis
from flask import Flask, Response, request

ONE_YEAR = 31104000

app = Flask(__name__)
db = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


def _key(path: str) -> str:
    return "proto:" + path


@app.put("/<path:path>")
def put(path: str) -> Response:
    doc = request.get_json(force=True)
    if not isinstance(doc, dict):
        return Response('{"error": "send a JSON object"}', 422, mimetype="application/json")
    doc.pop("ttl", None)
    doc["last_updated"] = int(time.time())
    fields = {name: v if isinstance(v, str) else json.dumps(v) for name, v in doc.items()}
    key = _key(path)
    existed = db.delete(key)
    db.execute_command("HMSET", key, *[part for item in fields.items() for part in item])
    db.expire(key, ONE_YEAR)
    doc["ttl"] = ONE_YEAR
    return Response(json.dumps(doc), 200 if existed else 201, mimetype="application/json")


@app.get("/<path:path>")
def get(path: str) -> Response:
    key = _key(path)
    stored = db.hgetall(key)
    if not stored:
        return Response('{"error": "thing doesn\'t exist"}', 404, mimetype="application/json")
    doc: dict[str, object] = {k.decode(): v.decode() for k, v in stored.items()}
    doc["ttl"] = db.ttl(key)
    return Response(json.dumps(doc), 200, mimetype="application/json")
