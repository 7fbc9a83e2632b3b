"""The error answers of the OpenAPI document: every status the server really uses, on each route.

FastAPI declares only the success answer and a 422 for request validation, which this server
answers with 400 instead (``_app.bad_request``). The answers of ``cairn.errors`` (see
``STATUS`` of the wire format) and of the body limit come from handlers and middleware FastAPI
cannot see, so they are added here, each with the one error body every refusal has:
``{"error": {"type": <a cairn.errors name>, "message": ...}}``.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.service import BATCH_TYPE

ERROR_SCHEMA = "Error"

# On every route: a bad request, no valid key, a key that may not do this, something that is not
# there or not readable with the key (404, never a hint that it exists), a body over the limit
# (the limit applies to any request), and a catalog outage (the client retries).
EVERY_ROUTE = {
    "400": "Bad request: a value the server refuses (the message names it)",
    "401": "No API key, or one that is unknown or revoked",
    "403": "The key may read but not do this, or the route is for admins",
    "404": "Not found, or not readable with this key",
    "413": "Request body over the server's limit",
    "503": "The catalog cannot be reached for now; retry",
}
# On every route that changes something: a concurrent change won, or the state forbids it.
CONFLICT = {"409": "Conflict: a concurrent change won, or the object's state forbids this"}
# Where content is re-hashed on arrival: bytes that do not hash to their digest.
DIGEST_MISMATCH = {"422": "Content does not match its digest; nothing was stored"}
HASHED_ON_ARRIVAL = {
    ("post", "/blobs/batch"),
    ("put", "/uploads/{upload_id}/parts/{number}"),
    ("put", "/uploads/{upload_id}/content"),
    ("post", "/uploads/{upload_id}/complete"),
}
# Answers of one route that are not errors: a blob's bytes, a part of them, or a redirect.
_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
OTHER_ANSWERS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/blobs/fetch"): {
        "200": {
            "description": "The readable small blobs asked for, packed (others left out)",
            "content": {BATCH_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
    },
    ("get", "/blobs/{digest}"): {
        "200": {"description": "The blob's content", "content": _BYTES},
        "206": {"description": "The bytes of the requested Range", "content": _BYTES},
        "307": {"description": "Redirect to the object store (a presigned URL)"},
        "416": {"description": "The Range starts past the end of the blob"},
    },
}
_CHANGES = {"post", "put", "patch", "delete"}
_METHODS = _CHANGES | {"get"}


def declare_errors(doc: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Add the error answers to every operation of ``doc`` (paths under ``prefix``), in place."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {"type": "string", "description": "a name from cairn.errors"},
                    "message": {"type": "string", "description": "what went wrong, what to do"},
                },
            }
        },
    }
    body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    for path, operations in doc.get("paths", {}).items():
        route = path.removeprefix(prefix)
        for method, op in operations.items():
            if method not in _METHODS:
                continue
            answers: dict[str, Any] = op.setdefault("responses", {})
            answers.pop("422", None)  # FastAPI's validation answer: this server says 400
            answers.update(OTHER_ANSWERS.get((method, route), {}))
            wanted = dict(EVERY_ROUTE)
            if method in _CHANGES:
                wanted |= CONFLICT
            if (method, route) in HASHED_ON_ARRIVAL:
                wanted |= DIGEST_MISMATCH
            for status, description in wanted.items():
                answers.setdefault(status, {"description": description, "content": body})
    # FastAPI's validation schemas, once nothing refers to them any more.
    for unused in ("HTTPValidationError", "ValidationError"):
        schema = schemas.pop(unused, None)
        if schema is not None and f'"#/components/schemas/{unused}"' in json.dumps(doc):
            schemas[unused] = schema
    return doc
