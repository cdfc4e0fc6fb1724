"""The OpenAPI 3.1 document of the HTTP contract (API.md), served at /_openapi.json, and /_docs,
a page to read it (Swagger UI, its assets shipped by the swagger-ui-py package: no CDN).

The document is data, built once per app: service endpoints that this app does not route (for
instance /_keys in a build without keys) are left out, so the document never promises what the
running server cannot do. tests/e2e/test_openapi.py checks it against a running server.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import swagger_ui
from flask import Blueprint, Flask, Response, abort, current_app, send_from_directory

from thingstash.core.config import Settings
from thingstash.web.context import settings_of

bp = Blueprint("openapi", __name__)

SWAGGER_ASSETS = Path(swagger_ui.__file__).parent / "static"
SERVED_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")

PROBLEM = "application/problem+json"
JSON = "application/json"
REF_PROBLEM = {"$ref": "#/components/responses/Problem"}

# What each error status means here; every one is problem+json.
ERRORS = {
    "400": "Bad request: malformed JSON, an integer over 4,300 digits, a bad path, ttl, limit, "
    "cursor or precondition header, a query parameter given twice",
    "401": "A key is needed, or the key or ID token sent is not valid (WWW-Authenticate: "
    "Bearer); or the rules deny a request that sent no credential (title `permission denied`)",
    "403": "The key may not do this here (scope or path prefix); or the rules deny this user "
    "(title `permission denied`, the reason in the detail)",
    "404": "The thing does not exist (title `thing doesn't exist`), or a reserved name",
    "405": "Method not allowed on this kind of path (Allow lists the ones that are)",
    "409": "The thing kept changing under this write: retry it (Retry-After); or an increment "
    "cannot apply to what is stored",
    "412": "If-Match / If-None-Match did not hold; nothing was written",
    "413": "The body is over the size limit, or the thing the write would store is (title "
    "`thing too large`: a PATCH's merge or an increment's result counts too); nothing was "
    "written",
    "415": "The body is not application/json (or merge-patch+json for PATCH)",
    "422": "The body is JSON but not a JSON object (nor is it one server value)",
    "421": "The Host header names a host this server does not answer for "
    "(THINGSTASH_ALLOWED_HOSTS)",
    "429": "Over the rate limit (Retry-After)",
    "503": "The data store cannot be reached right now (Retry-After)",
    "507": "The data store is out of memory (Redis maxmemory); nothing was written",
}


def _admin_item(
    parameter: dict[str, Any],
    noun: str,
    tag: str,
    content: dict[str, Any],
    delete: tuple[str, str, str],
    admin: dict[str, Any],
) -> dict[str, Any]:
    """An admin collection's item (a key, an index): GET it, DELETE it (summary, operationId,
    what the 204 says); `admin`: the refusals of an admin endpoint."""
    errors = {**_errors("404"), **admin}
    summary, operation_id, done = delete
    return {
        "parameters": [parameter],
        "get": {
            "summary": f"One {noun} (admin)",
            "operationId": f"get{noun.capitalize()}",
            "tags": [tag],
            "responses": {"200": {"description": f"The {noun}", "content": content}, **errors},
        },
        "delete": {
            "summary": summary,
            "operationId": operation_id,
            "tags": [tag],
            "responses": {"204": {"description": done}, **errors},
        },
    }


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: {**REF_PROBLEM, "description": ERRORS[status]} for status in statuses}


def _header(description: str, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


VERSION_HEADERS = {
    "ETag": _header("The thing's version; changes on every write", True),
    "Last-Modified": _header("The time of the last write", True),
}


def _thing_response(description: str, schema: str = "Thing") -> dict[str, Any]:
    return {
        "description": description,
        "headers": VERSION_HEADERS,
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _events_content() -> dict[str, Any]:
    return {
        "text/event-stream": {
            "schema": {
                "type": "string",
                "description": "Server-Sent Events: `put`, `patch`, `delete`, `expire` (data: "
                '`{"path", "thing"}`, `thing` as GET shows it or null) and `reset` (data: '
                '`{"path"}`, for a thing with its current `thing`), each with an `id`; a '
                "comment every 15 s keeps proxies open.",
            }
        }
    }


def _parameters(settings: Settings) -> dict[str, Any]:
    return {
        "ThingPath": {
            "name": "path",
            "in": "path",
            "required": True,
            "description": "The thing's path: segments separated by `/` (percent-encoded on "
            "the wire), no empty, `.` or `..` segment, no control character, at most 1024 "
            "bytes, not ending in `/`; a top-level name starting with `_` is reserved.",
            "schema": {"type": "string", "pattern": "^[^_/](.*[^/])?$", "maxLength": 1024},
        },
        "FolderPath": {
            "name": "folder",
            "in": "path",
            "required": True,
            "description": "The folder's path, without its trailing `/`.",
            "schema": {"type": "string", "pattern": "^[^_/](.*[^/])?$", "maxLength": 1023},
        },
        "Ttl": {
            "name": "ttl",
            "in": "query",
            "description": "Lifetime in seconds for this write (as `ttl` in the body; the two "
            "must agree).",
            "schema": {"type": "integer", "minimum": 1, "maximum": settings.max_ttl},
        },
        "IfMatch": {
            "name": "If-Match",
            "in": "header",
            "description": "Write (or read) only if the thing's ETag is one of these; `*`: if "
            "it exists. Otherwise 412.",
            "schema": {"type": "string"},
        },
        "IfNoneMatch": {
            "name": "If-None-Match",
            "in": "header",
            "description": "GET/HEAD: 304 if the ETag matches. PUT with `*`: create only.",
            "schema": {"type": "string"},
        },
        "IfModifiedSince": {
            "name": "If-Modified-Since",
            "in": "header",
            "description": "GET/HEAD: 304 if the thing was last written no later than this "
            "HTTP date. Ignored with If-None-Match, and when it is not an HTTP date.",
            "schema": {"type": "string"},
        },
        "LastEventId": {
            "name": "Last-Event-ID",
            "in": "header",
            "description": "Watching: resume after this event id (from a previous event or a "
            "listing's Last-Event-ID header).",
            "schema": {"type": "string"},
        },
        "Accept": {
            "name": "Accept",
            "in": "header",
            "description": "`text/event-stream` watches instead of reading.",
            "schema": {"type": "string"},
        },
        "Limit": {
            "name": "limit",
            "in": "query",
            "description": "Entries (things and folders together) per page.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        },
        "Cursor": {
            "name": "cursor",
            "in": "query",
            "description": "The `next` of the previous page.",
            "schema": {"type": "string"},
        },
        "Values": {
            "name": "values",
            "in": "query",
            "description": "`true` adds each thing's body as `value`; a page then ends early "
            "(with `next`) once its things' JSON passes 4 MiB.",
            "schema": {"type": "string", "enum": ["true", "false"]},
        },
        "OrderBy": {
            "name": "order_by",
            "in": "query",
            "description": "Query: answer the things directly in the folder in the order of "
            "this field of their JSON (`score`, `stats/level`), or `$name`, or `$updated` "
            "(last write, Unix ms): missing/null, false, true, numbers, strings, then arrays "
            "and objects; ties by name. On a folder of more than 1,000 things a field needs "
            "an index (`/_indexes`); `$name` never does.",
            "schema": {"type": "string"},
        },
        "Desc": {
            "name": "desc",
            "in": "query",
            "description": "Query: `true` reverses the whole order (ranks too).",
            "schema": {"type": "string", "enum": ["true", "false"]},
        },
        "StartAt": {
            "name": "start_at",
            "in": "query",
            "description": 'Query: the first value, inclusive, as JSON (`10`, `"10"`, '
            "`true`, `null`), in the order asked (with `desc`, the highest).",
            "schema": {"type": "string"},
        },
        "EndAt": {
            "name": "end_at",
            "in": "query",
            "description": "Query: the last value, inclusive, as JSON.",
            "schema": {"type": "string"},
        },
        "EqualTo": {
            "name": "equal_to",
            "in": "query",
            "description": "Query: only this value (JSON); not with start_at or end_at.",
            "schema": {"type": "string"},
        },
        "Around": {
            "name": "around",
            "in": "query",
            "description": "Query: the page of `limit` things centred on this thing's name, "
            "with ranks; not with cursor or bounds. 404 when there is no such thing.",
            "schema": {"type": "string"},
        },
        "Count": {
            "name": "count",
            "in": "query",
            "description": '`true`: answer `{"count": N}`, the things directly in the folder '
            "(with order_by and bounds, those in the range); not with values, limit, cursor "
            "or around.",
            "schema": {"type": "string", "enum": ["true", "false"]},
        },
        "Recursive": {
            "name": "recursive",
            "in": "query",
            "required": True,
            "description": "Must be `true`: confirms deleting everything below the folder.",
            "schema": {"type": "string", "enum": ["true"]},
        },
    }


def _schemas(settings: Settings) -> dict[str, Any]:
    ttl = {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": settings.max_ttl,
        "description": "Lifetime to give the thing, in seconds (null: the default)",
    }
    return {
        "Thing": {
            "type": "object",
            "description": "A JSON object as it was stored, with the reserved fields added.",
            "properties": {
                "ttl": {"type": "integer", "description": "Seconds the thing has left"},
                "last_updated": {
                    "type": "integer",
                    "description": "Unix time (s) of the last write",
                },
            },
            "required": ["ttl", "last_updated"],
            "additionalProperties": True,
        },
        "PushedThing": {
            "allOf": [
                {"$ref": "#/components/schemas/Thing"},
                {
                    "type": "object",
                    "properties": {"path": {"type": "string"}},
                    "required": ["path"],
                },
            ]
        },
        "ThingBody": {
            "type": "object",
            "description": 'Any JSON object. `{".sv": "timestamp"}` and '
            '`{".sv": {"increment": N}}` are server values inside it (not the whole body); '
            "`last_updated` is ignored. Integers have at most 4,300 digits.",
            "properties": {"ttl": ttl},
            "additionalProperties": True,
        },
        "Listing": {
            "type": "object",
            "properties": {
                "things": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "ttl": {"type": "integer"},
                            "last_updated": {"type": "integer"},
                            "value": {"type": "object", "description": "With ?values=true"},
                        },
                        "required": ["path", "ttl", "last_updated"],
                    },
                },
                "folders": {"type": "array", "items": {"type": "string"}},
                "next": {"type": ["string", "null"], "description": "Cursor of the next page"},
            },
            "required": ["things", "folders", "next"],
        },
        "QueryAnswer": {
            "type": "object",
            "description": "A query's page, in order.",
            "properties": {
                "things": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "ttl": {"type": "integer"},
                            "last_updated": {"type": "integer"},
                            "rank": {
                                "type": "integer",
                                "minimum": 1,
                                "description": "Position in the whole order asked",
                            },
                            "key": {"description": "The field's value (null when absent)"},
                            "value": {"type": "object", "description": "With ?values=true"},
                        },
                        "required": ["path", "ttl", "last_updated", "rank", "key"],
                    },
                },
                "next": {"type": ["string", "null"], "description": "Cursor of the next page"},
            },
            "required": ["things", "next"],
        },
        "Count": {
            "type": "object",
            "properties": {"count": {"type": "integer", "minimum": 0}},
            "required": ["count"],
        },
        "Index": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "folder": {"type": "string", "description": "A segment may be `*`"},
                "field": {"type": "string"},
                "created": {"type": "integer"},
                "state": {"type": "string", "enum": ["building", "ready"]},
            },
            "required": ["id", "folder", "field", "created", "state"],
        },
        "Deleted": {
            "type": "object",
            "properties": {"deleted": {"type": "integer", "minimum": 0}},
            "required": ["deleted"],
        },
        "RulesStored": {
            "type": "object",
            "properties": {
                "status": {"const": "ok"},
                "indexes": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"folder": {"type": "string"}, "field": {"type": "string"}},
                        "required": ["folder", "field"],
                    },
                },
            },
            "required": ["status", "indexes"],
        },
        "Imported": {
            "type": "object",
            "properties": {
                "imported": {"type": "integer", "minimum": 0},
                "created": {"type": "integer", "minimum": 0},
            },
            "required": ["imported", "created"],
        },
        "Health": {
            "type": "object",
            "properties": {"status": {"type": "string"}, "redis": {"type": "boolean"}},
            "required": ["status"],
        },
        "Key": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "scope": {"type": "string", "enum": ["read", "write", "admin"]},
                "prefix": {"type": "string"},
                "created": {"type": ["integer", "number", "string", "null"]},
                "last_used": {"type": ["integer", "number", "string", "null"]},
                "key": {"type": "string", "description": "Only when created: shown once"},
            },
            "required": ["id", "scope", "prefix"],
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
            },
            "required": ["type", "title", "status", "detail"],
        },
    }


def _thing_operations() -> dict[str, Any]:
    params = [{"$ref": "#/components/parameters/ThingPath"}]
    body = {
        "required": True,
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/ThingBody"}}},
    }
    read_errors = _errors("400", "401", "403", "404", "412", "429", "503")
    # 404 on writes: a reserved top-level name (`_...`).
    write = _errors(
        "400", "401", "403", "404", "405", "409", "412", "413", "415", "422", "429", "503", "507"
    )
    return {
        "parameters": params,
        "get": {
            "summary": "Read a thing (or watch it, with Accept: text/event-stream)",
            "operationId": "getThing",
            "tags": ["things"],
            "parameters": [
                {"$ref": "#/components/parameters/IfMatch"},
                {"$ref": "#/components/parameters/IfNoneMatch"},
                {"$ref": "#/components/parameters/IfModifiedSince"},
                {"$ref": "#/components/parameters/Accept"},
                {"$ref": "#/components/parameters/LastEventId"},
            ],
            "responses": {
                "200": {
                    **_thing_response("The thing, or its event stream when watching"),
                    "headers": {
                        "ETag": _header("The thing's version"),
                        "Last-Modified": _header("The time of the last write"),
                    },
                    "content": {
                        JSON: {"schema": {"$ref": "#/components/schemas/Thing"}},
                        **_events_content(),
                    },
                },
                "304": {"description": "Not modified (If-None-Match or If-Modified-Since)"},
                **read_errors,
            },
        },
        "head": {
            "summary": "As GET, without the body",
            "operationId": "headThing",
            "tags": ["things"],
            "parameters": [
                {"$ref": "#/components/parameters/IfMatch"},
                {"$ref": "#/components/parameters/IfNoneMatch"},
                {"$ref": "#/components/parameters/IfModifiedSince"},
            ],
            "responses": {
                "200": {"description": "The thing exists", "headers": VERSION_HEADERS},
                "304": {"description": "Not modified"},
                **{s: {"description": ERRORS[s]} for s in read_errors},
            },
        },
        "put": {
            "summary": "Store a thing, replacing any old one whole",
            "operationId": "putThing",
            "tags": ["things"],
            "parameters": [
                {"$ref": "#/components/parameters/Ttl"},
                {"$ref": "#/components/parameters/IfMatch"},
                {"$ref": "#/components/parameters/IfNoneMatch"},
            ],
            "requestBody": body,
            "responses": {
                "200": _thing_response("Replaced: the thing as GET shows it"),
                "201": _thing_response("Created: the thing as GET shows it"),
                **write,
            },
        },
        "patch": {
            "summary": "Merge a JSON Merge Patch (RFC 7396) into a thing, atomically",
            "operationId": "patchThing",
            "tags": ["things"],
            "parameters": [
                {"$ref": "#/components/parameters/Ttl"},
                {"$ref": "#/components/parameters/IfMatch"},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/merge-patch+json": {
                        "schema": {"$ref": "#/components/schemas/ThingBody"}
                    },
                    JSON: {"schema": {"$ref": "#/components/schemas/ThingBody"}},
                },
            },
            "responses": {
                "200": _thing_response("The merged thing"),
                **write,
            },
        },
        "delete": {
            "summary": "Remove a thing",
            "operationId": "deleteThing",
            "tags": ["things"],
            "parameters": [{"$ref": "#/components/parameters/IfMatch"}],
            "responses": {"204": {"description": "Deleted"}, **read_errors},
        },
    }


def _folder_operations(root: bool) -> dict[str, Any]:
    which = "the top level" if root else "a folder"
    listing_headers = {
        "Last-Event-ID": _header("The change feed's position when listed: watch from it")
    }
    operations: dict[str, Any] = {
        "get": {
            "summary": f"List {which}, or query it (order_by, count), or watch either "
            "(Accept: text/event-stream)",
            "operationId": "listRoot" if root else "listFolder",
            "tags": ["folders"],
            "parameters": [
                {"$ref": "#/components/parameters/Limit"},
                {"$ref": "#/components/parameters/Cursor"},
                {"$ref": "#/components/parameters/Values"},
                {"$ref": "#/components/parameters/OrderBy"},
                {"$ref": "#/components/parameters/Desc"},
                {"$ref": "#/components/parameters/StartAt"},
                {"$ref": "#/components/parameters/EndAt"},
                {"$ref": "#/components/parameters/EqualTo"},
                {"$ref": "#/components/parameters/Around"},
                {"$ref": "#/components/parameters/Count"},
                {"$ref": "#/components/parameters/Accept"},
                {"$ref": "#/components/parameters/LastEventId"},
            ],
            "responses": {
                "200": {
                    "description": "What is directly inside, sorted by name; with order_by or "
                    "count, the query's answer; watching, the event stream of every change "
                    "below it (a query: `query` events, each a whole answer)",
                    "headers": listing_headers,
                    "content": {
                        JSON: {
                            "schema": {
                                "anyOf": [
                                    {"$ref": "#/components/schemas/Listing"},
                                    {"$ref": "#/components/schemas/QueryAnswer"},
                                    {"$ref": "#/components/schemas/Count"},
                                ]
                            }
                        },
                        **_events_content(),
                    },
                },
                **_errors("400", "401", "403", "404", "429", "503"),
            },
        },
        "post": {
            "summary": f"Create a thing in {which} with a new, time-sorted ID",
            "operationId": "pushRoot" if root else "pushThing",
            "tags": ["folders"],
            "parameters": [{"$ref": "#/components/parameters/Ttl"}],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/ThingBody"}}},
            },
            "responses": {
                "201": {
                    **_thing_response("Created", "PushedThing"),
                    "headers": {**VERSION_HEADERS, "Location": _header("The new thing", True)},
                },
                **_errors(
                    "400",
                    "401",
                    "403",
                    "404",
                    "409",
                    "412",
                    "413",
                    "415",
                    "422",
                    "429",
                    "503",
                    "507",
                ),
            },
        },
        "delete": {
            "summary": f"Delete everything below {which}",
            "operationId": "deleteRoot" if root else "deleteFolder",
            "tags": ["folders"],
            "parameters": [{"$ref": "#/components/parameters/Recursive"}],
            "responses": {
                "200": {
                    "description": "How many things were deleted",
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Deleted"}}},
                },
                **_errors("400", "401", "403", "404", "429", "503"),
            },
        },
    }
    if not root:
        operations["parameters"] = [{"$ref": "#/components/parameters/FolderPath"}]
    return operations


def _page(summary: str, operation_id: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": operation_id,
            "tags": ["service"],
            "responses": {
                "200": {"description": "An HTML page", "content": {"text/html": {}}},
            },
        }
    }


def _rules_path(admin: dict[str, Any]) -> dict[str, Any]:
    """GET and PUT /_rules (web/rulesdoc.py)."""
    document = {JSON: {"schema": {"type": "object"}}}
    return {
        "get": {
            "summary": "The store's rules document, as stored (admin)",
            "operationId": "getRules",
            "tags": ["rules"],
            "responses": {
                "200": {"description": "The rules document", "content": document},
                **_errors("404"),
                **admin,
            },
        },
        "put": {
            "summary": "Set the store's rules (admin)",
            "description": "Firebase's Realtime Database rules, in its dialect of JSON (comments, "
            "multi-line strings): `.read`, `.write`, `.validate`, `.indexOn` (which declare "
            "query indexes). Once a store has a rules document, requests with a user's ID token, "
            "and requests with no credential, are judged by it at every door; API keys are not. "
            "A document that does not parse or type-check is 400 naming the place, and the "
            "rules in force stay as they were.",
            "operationId": "putRules",
            "tags": ["rules"],
            "requestBody": {
                "required": True,
                "content": {
                    "text/plain": {
                        "schema": {"type": "string"},
                        "example": '{"rules": {"users": {"$uid": {".read": "auth.uid == $uid", '
                        '".write": "auth.uid == $uid"}}}}',
                    },
                    JSON: {"schema": {"type": "object"}},
                },
            },
            "responses": {
                "200": {
                    "description": "Stored and in force; the indexes its `.indexOn`s declared",
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/RulesStored"}}},
                },
                **_errors("400", "413"),
                **admin,
            },
        },
    }


def _service_paths() -> dict[str, Any]:
    admin = _errors("401", "403", "429", "503")
    key_ref = {JSON: {"schema": {"$ref": "#/components/schemas/Key"}}}
    key_id = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
    index_ref = {JSON: {"schema": {"$ref": "#/components/schemas/Index"}}}
    index_id = {"name": "index_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/_health": {
            "get": {
                "summary": "Is the service up, with its Redis reachable?",
                "operationId": "health",
                "tags": ["service"],
                "responses": {
                    "200": {
                        "description": "Healthy",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Health"}}},
                    },
                    "503": {
                        "description": "Redis is not reachable",
                        "headers": {"Retry-After": _header("Seconds to wait")},
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Health"}}},
                    },
                },
            }
        },
        "/_metrics": {
            "get": {
                "summary": "Prometheus metrics (text format)",
                "operationId": "metrics",
                "tags": ["service"],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **admin,
                },
            }
        },
        "/_openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "tags": ["service"],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {JSON: {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/_rules": _rules_path(admin),
        "/_import": {
            "post": {
                "summary": "Import things in bulk: the lines of `thingstash export`",
                "description": "JSON Lines, one thing per line: "
                '`{"path": "a/b", "thing": {...}, "ttl": 60}` (`ttl` optional). Every line is '
                "checked first, as a PUT of it would be, and against the key's scope and "
                "prefix; the first bad one is refused naming its line number, and then nothing "
                'is stored. `{".sv": "timestamp"}` is resolved; an increment is refused (it is '
                "not idempotent). A line's `ttl` of 0 (an export's last second) is taken as 1. "
                "The server's body limit applies to several lines: send a big file in batches. "
                "A line sent alone may be longer, by a thing of the largest size and its path "
                "and ttl; a thing grown past the size limit before every write was checked "
                "restores too, up to 4 times the limit (past it, 413 naming its line).",
                "operationId": "importThings",
                "tags": ["things"],
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {
                            "schema": {"type": "string"},
                            "example": '{"path": "imported/a", "thing": {"n": 1}, "ttl": 60}\n'
                            '{"path": "imported/b", "thing": {"s": "x"}}\n',
                        }
                        for media in ("application/jsonl", "application/x-ndjson")
                    },
                },
                "responses": {
                    "200": {
                        "description": "All stored: how many, and how many were new",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Imported"}}},
                    },
                    **_errors("400", "401", "403", "409", "413", "415", "429", "503", "507"),
                },
            }
        },
        "/_docs": _page("A page to read this document", "docs"),
        "/_ui": _page("The web console: browse, view, edit, delete and watch things", "ui"),
        "/_keys": {
            "get": {
                "summary": "List API keys (admin; never the keys themselves)",
                "operationId": "listKeys",
                "tags": ["keys"],
                "responses": {
                    "200": {
                        "description": "The keys",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "keys": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Key"},
                                        }
                                    },
                                    "required": ["keys"],
                                }
                            }
                        },
                    },
                    **admin,
                },
            },
            "post": {
                "summary": "Create an API key (admin); the key is shown once",
                "description": "An open store (no key yet) makes no key over HTTP: `403`; its "
                "first key comes from `thingstash keys create` on the store.",
                "operationId": "createKey",
                "tags": ["keys"],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "scope": {
                                        "type": "string",
                                        "enum": ["read", "write", "admin"],
                                    },
                                    "prefix": {"type": "string"},
                                },
                                "required": ["scope"],
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "Created, with `key`",
                        "headers": {"Location": _header("The key's URL")},
                        "content": key_ref,
                    },
                    **_errors("400", "415"),
                    **admin,
                },
            },
        },
        "/_indexes": {
            "get": {
                "summary": "List query indexes (admin)",
                "operationId": "listIndexes",
                "tags": ["indexes"],
                "responses": {
                    "200": {
                        "description": "The indexes, each building or ready",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "indexes": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/Index"},
                                        }
                                    },
                                    "required": ["indexes"],
                                }
                            }
                        },
                    },
                    **admin,
                },
            },
            "post": {
                "summary": "Index a field of the things of a folder (admin)",
                "description": "The folder may name one segment `*` (`games/*/scores/`). What "
                "is stored is taken in in the background (`state` building, then ready); every "
                "write keeps it current. The same index again answers 200 with it.",
                "operationId": "createIndex",
                "tags": ["indexes"],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "folder": {"type": "string"},
                                    "field": {"type": "string"},
                                },
                                "required": ["folder", "field"],
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "201": {
                        "description": "Declared",
                        "headers": {"Location": _header("The index's URL")},
                        "content": index_ref,
                    },
                    "200": {"description": "Declared already", "content": index_ref},
                    **_errors("400", "415"),
                    **admin,
                },
            },
        },
        "/_indexes/{index_id}": _admin_item(
            index_id,
            "index",
            "indexes",
            index_ref,
            ("Drop an index (admin)", "dropIndex", "Dropped"),
            admin,
        ),
        "/_keys/{key_id}": _admin_item(
            key_id,
            "key",
            "keys",
            key_ref,
            ("Revoke a key at once (admin)", "revokeKey", "Revoked"),
            admin,
        ),
    }


def build_document(settings: Settings | None = None) -> dict[str, Any]:
    """The whole contract, every service endpoint included, with the limits of `settings` (the
    running app's; the defaults without)."""
    settings = settings or Settings()
    problem_content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "thingstash",
            "version": "0.1.0",
            "description": "An instant JSON store over HTTP: PUT a JSON object at any path, GET "
            "it back, list folders, query them in the order of a field (ranks, counts, live "
            "answers), watch changes live. Every error is "
            "application/problem+json.",
        },
        "tags": [
            {"name": "things", "description": "JSON objects at paths"},
            {
                "name": "folders",
                "description": "Listings, queries, watching, push and recursive delete",
            },
            {"name": "service", "description": "The service's own endpoints"},
            {"name": "keys", "description": "API keys (admin)"},
            {"name": "indexes", "description": "Query indexes (admin)"},
            {"name": "rules", "description": "The store's rules document (admin)"},
        ],
        "security": [{}, {"bearer": []}],
        "paths": {
            "/": _folder_operations(root=True),
            "/{folder}/": _folder_operations(root=False),
            "/{path}": _thing_operations(),
            **_service_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`thingstash keys create`; not needed while "
                    "no key exists on a loopback server), or a user's ID token (a JWT from the "
                    "configured identity provider), judged by the store's rules; on an open "
                    "loopback store `owner` is the admin. An admin may add "
                    "`?auth_variable_override=<JSON>` to be judged as that auth.",
                }
            },
            "parameters": _parameters(settings),
            "schemas": _schemas(settings),
            "responses": {
                "Problem": {
                    "description": "An error (RFC 9457)",
                    "headers": {
                        "Retry-After": _header("On 409, 429 and 503: seconds to wait"),
                        "WWW-Authenticate": _header("On 401"),
                        "Allow": _header("On 405"),
                    },
                    "content": problem_content,
                }
            },
        },
    }
    # The Host check (web.hosts) answers before anything else, on every path and method.
    for operations in document["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].setdefault("421", _errors("421")["421"])
    return document


def document_for(app: Flask) -> dict[str, Any]:
    """The document without the service endpoints this app does not route."""
    document = copy.deepcopy(build_document(settings_of(app)))
    routed = {rule.rule.replace("<key_id>", "{key_id}") for rule in app.url_map.iter_rules()}
    for path in list(document["paths"]):
        if path.startswith("/_") and path not in routed:
            del document["paths"][path]
    return document


@bp.get("/_openapi.json")
def openapi_json() -> Response:
    cached = current_app.extensions.get("thingstash.web.openapi")
    if cached is None:
        cached = orjson.dumps(document_for(current_app))
        current_app.extensions["thingstash.web.openapi"] = cached
    return Response(cached, mimetype=JSON)


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>thingstash API</title>
<link rel="icon" href="/_docs/favicon-32x32.png">
<link rel="stylesheet" href="/_docs/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/_docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/_openapi.json", dom_id: "#docs", deepLinking: true});
</script>
</body>
</html>
"""


@bp.get("/_docs")
def docs() -> Response:
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/_docs/<asset>")
def docs_asset(asset: str) -> Response:
    if asset not in SERVED_ASSETS:
        abort(404)
    response = send_from_directory(SWAGGER_ASSETS, asset, max_age=3600)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
