"""Responses checked against the console's OpenAPI document: the status is documented for the operation, the
content type is one it documents for that status, and a JSON body matches the documented schema."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema_rs

from emotiond.clients.web import openapi

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@functools.cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    """(regex, template) of each documented path; fixed paths first, as the router matches them."""
    paths = sorted(openapi.document()["paths"], key=lambda p: ("{" in p, -len(p)))
    return [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$"), p) for p in paths]


def _ref_error() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/Error"}


def _served(method: str, path: str) -> bool:
    try:
        operation_of(method, path)
    except AssertionError:
        return False
    return True


def operation_of(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The documented template and operation that serve ``method path``."""
    document = openapi.document()
    fixed = path in document["paths"]  # a fixed path is never a template's (a template never matches a fixed path)
    for pattern, template in _templates():
        if pattern.match(path) and (template == path or not fixed) and method.lower() in document["paths"][template]:
            return template, document["paths"][template][method.lower()]
    raise AssertionError(f"{method} {path}: no operation in the OpenAPI document")


@functools.cache
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    return jsonschema_rs.validator_for({"$schema": SCHEMA_DIALECT, **schema,
                                        "components": openapi.document()["components"]})


def check_response(method: str, path: str, status: int, content_type: str, body: bytes | None) -> None:
    """Fail unless the response is one the document allows. ``body`` None: not read (a stream)."""
    if status in (404, 405) and not _served(method, path):  # the router's answer: no such route or method
        assert content_type.startswith("application/json") and body is not None, f"{method} {path}: {status}"
        assert not list(_validator(json.dumps(_ref_error())).iter_errors(json.loads(body))), body
        return
    template, operation = operation_of(method, path)
    where = f"{method} {path} ({template}) -> {status}"
    responses = operation["responses"]
    assert str(status) in responses, f"{where}: status not documented (documented: {sorted(responses)})"
    documented = responses[str(status)].get("content")
    if not documented:
        return
    media = content_type.split(";")[0].strip().lower()
    assert media in documented, f"{where}: content type {media!r} not documented ({sorted(documented)})"
    if media != "application/json" or body is None:
        return
    schema = documented[media].get("schema", {})
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = [f"/{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator.iter_errors(json.loads(body))]
    assert not errors, f"{where}: the body breaks the document: {errors[:5]}"


async def check_client_response(response: Any) -> None:
    """``check_response`` for an aiohttp ClientResponse and the redirects before it (a JSON body is read; it
    stays readable)."""
    for step in (*response.history, response):
        media = step.headers.get("Content-Type", "")
        body = await step.read() if media.startswith("application/json") else None
        check_response(step.method, step.url.path, step.status, media, body)
