"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), applied the way the apiserver applies them."""

from __future__ import annotations

import copy
from typing import Any

from kubesim.errors import ApiError, bad_request, rejected_patch

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a patch body of the given media type.

    Strategic merge is treated as a merge patch: the kinds kubesim serves natively (Secret, Namespace)
    have no lists with merge keys that clients patch.
    """
    if content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        if not isinstance(patch, dict):
            raise bad_request("the request body must be a JSON object for a merge patch")
        return merge_patch(target, patch)
    if content_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        return json_patch(target, patch)
    accepted = ", ".join((JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH))
    message = f"the body of the request was in an unknown format - accepted media types include: {accepted}"
    raise ApiError(415, "UnsupportedMediaType", message)


def json_patch(target: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    document: Any = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise bad_request("a JSON patch operation needs 'op' and 'path'")
        document = _apply_operation(document, operation)
    return document


def _apply_operation(document: Any, operation: dict[str, Any]) -> Any:
    op, path = operation["op"], operation["path"]
    if op == "add":
        return _add(document, path, copy.deepcopy(_value(operation)))
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        _get(document, path)
        document, _ = _remove(document, path)
        return _add(document, path, copy.deepcopy(_value(operation)))
    if op == "move":
        document, value = _remove(document, _from(operation))
        return _add(document, path, value)
    if op == "copy":
        return _add(document, path, copy.deepcopy(_get(document, _from(operation))))
    if op == "test":
        if _get(document, path) != _value(operation):
            raise rejected_patch(f"testing value {path} failed: test failed")
        return document
    raise bad_request(f"Unexpected kind: {op}")


def _value(operation: dict[str, Any]) -> Any:
    if "value" not in operation:
        raise rejected_patch(f"missing value for {operation['op']} operation at {operation['path']}")
    return operation["value"]


def _from(operation: dict[str, Any]) -> str:
    if "from" not in operation:
        raise rejected_patch(f"missing from for {operation['op']} operation")
    return operation["from"]


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise rejected_patch(f"invalid JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(document: Any, path: str) -> tuple[Any, str]:
    tokens = _tokens(path)
    if not tokens:
        raise rejected_patch("the root document cannot be patched by this operation")
    container = document
    for token in tokens[:-1]:
        container = _child(container, token, path)
    return container, tokens[-1]


def _child(container: Any, token: str, path: str) -> Any:
    if isinstance(container, dict) and token in container:
        return container[token]
    if isinstance(container, list) and token.isdigit() and int(token) < len(container):
        return container[int(token)]
    raise rejected_patch(f"doc is missing path: {path!r}: missing value")


def _get(document: Any, path: str) -> Any:
    value = document
    for token in _tokens(path):
        value = _child(value, token, path)
    return value


def _add(document: Any, path: str, value: Any) -> Any:
    if path == "":
        return value
    container, key = _parent(document, path)
    if isinstance(container, dict):
        container[key] = value
    elif isinstance(container, list):
        index = len(container) if key == "-" else _index(key, len(container) + 1, path)
        container.insert(index, value)
    else:
        raise rejected_patch(f"doc is missing path: {path!r}: missing value")
    return document


def _remove(document: Any, path: str) -> tuple[Any, Any]:
    container, key = _parent(document, path)
    if isinstance(container, dict) and key in container:
        return document, container.pop(key)
    if isinstance(container, list):
        return document, container.pop(_index(key, len(container), path))
    raise rejected_patch(f"doc is missing path: {path!r}: missing value")


def _index(token: str, limit: int, path: str) -> int:
    if not token.isdigit() or int(token) >= limit:
        raise rejected_patch(f"doc is missing path: {path!r}: missing value")
    return int(token)
