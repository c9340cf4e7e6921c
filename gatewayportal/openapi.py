"""OpenAPI post-processing: document the error answers every operation can give (API.md, "Errors").

drf-spectacular documents only the success answer of each operation; clients (and schema-driven testers) need
the refusals too: 400 with DRF's error shape when there is input or a write to refuse, 401/403 behind authentication,
404 when there is an object (or a page) to look up, 415 when there is a body of a given media type.
"""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        'DRF\'s error shape: {"detail": "..."} for 401, 403, 404, 405 and 415; '
        '{"field": ["message"]} (nested for nested fields, "non_field_errors" otherwise) for 400.'
    ),
    "additionalProperties": {},
}
DESCRIPTIONS = {
    "400": "Invalid input; the body names each field and what is accepted.",
    "401": "Missing or invalid credentials.",
    "403": "Authenticated but not allowed (e.g. a platform-only operation).",
    "404": "Unknown or not visible to the caller (objects of other teams answer 404), or a page past the end.",
    "415": "Unsupported request media type.",
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry: adds the refusals an operation can answer, unless declared."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _error_codes(method, operation):
                responses.setdefault(code, _response(code))
    return result


def _error_codes(method: str, operation: dict[str, Any]) -> list[str]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    codes = []
    # Writes can be refused by a domain rule even without input (e.g. deleting a team that still owns services).
    if has_body or method != "get" or any(p.get("in") == "query" for p in parameters):
        codes.append("400")
    if operation.get("security") != [{}] and operation.get("security") != []:
        codes += ["401", "403"]
    if any(p.get("in") == "path" or p.get("name") == "page" for p in parameters):
        codes.append("404")
    if has_body:
        codes.append("415")
    return codes


def _response(code: str) -> dict[str, Any]:
    return {
        "description": DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
    }
