"""Structural-schema pruning and validation of custom resources, as the apiserver does for a CRD.

Only the OpenAPI subset that Istio's Gateway CRD uses is implemented. CEL rules are not interpreted in general:
the one rule shape the CRD uses ("at most one of these fields is set") is recognised, and any other rule makes
loading fail, so a new CRD cannot be validated silently wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kubesim.errors import Cause

GATEWAY_CRD = Path(__file__).with_name("crds") / "gateway-crd.yaml"
OPERATOR_CRDS = Path(__file__).with_name("crds") / "gatewayservice-crds.yaml"

# ObjectMeta fields a client may send; everything else in metadata is dropped like unknown fields.
_OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
        "selfLink",
    }
)
_ONE_OF_TERM = re.compile(r"\(has\(self\.(\w+)\)\s*\?\s*1\s*:\s*0\)")
_ONE_OF_RULE = re.compile(
    r"^\s*(\(has\(self\.\w+\)\s*\?\s*1\s*:\s*0\)\s*\+\s*)+\(has\(self\.\w+\)\s*\?\s*1\s*:\s*0\)\s*<=\s*1\s*$"
)
_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


@dataclass(frozen=True)
class AtMostOne:
    """A CEL rule of the form `(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) <= 1`."""

    fields: tuple[str, ...]
    message: str

    def holds(self, value: dict[str, Any]) -> bool:
        return sum(1 for name in self.fields if name in value) <= 1


def compile_rule(rule: dict[str, str]) -> AtMostOne:
    text = " ".join(rule["rule"].split())
    if not _ONE_OF_RULE.match(text):
        raise ValueError(f"kubesim cannot evaluate the CEL rule {rule['rule']!r}; add support for it in schema.py")
    return AtMostOne(tuple(_ONE_OF_TERM.findall(text)), rule.get("message") or f"failed rule: {rule['rule']}")


@cache
def crd_versions(path: Path = GATEWAY_CRD) -> dict[str, dict[str, Any]]:
    """The openAPIV3Schema of every served version of the CRD, by version name."""
    crd = yaml.safe_load(path.read_text())
    return {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v.get("served")}


@cache
def crd_schemas(path: Path = OPERATOR_CRDS) -> dict[tuple[str, str], dict[str, Any]]:
    """The openAPIV3Schema of every served version of every CRD in a multi-document file, by (group, version)."""
    return {
        (crd["spec"]["group"], v["name"]): v["schema"]["openAPIV3Schema"]
        for crd in yaml.safe_load_all(path.read_text())
        for v in crd["spec"]["versions"]
        if v.get("served")
    }


def json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), "object")


def prune(schema: dict[str, Any], value: Any) -> Any:
    """Drop fields the schema does not know, as the apiserver does for structural schemas."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value
    if isinstance(value, dict):
        if "properties" in schema:
            props = schema["properties"]
            return {k: prune(props[k], v) for k, v in value.items() if k in props}
        if isinstance(schema.get("additionalProperties"), dict):
            return {k: prune(schema["additionalProperties"], v) for k, v in value.items()}
        return value
    if isinstance(value, list) and "items" in schema:
        return [prune(schema["items"], item) for item in value]
    return value


def prune_object(schema: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    """Prune a whole custom object: apiVersion/kind/metadata are implicit, the rest follows the schema."""
    body = prune(schema, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")})
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k in _OBJECT_META_FIELDS}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": metadata, **body}


def validate(schema: dict[str, Any], value: Any, path: str) -> list[Cause]:
    """All schema violations of `value`, each naming its field path like `spec.servers[0].port.number`."""
    if value is None:
        if schema.get("nullable"):
            return []
        return [_type_error(schema, value, path)] if "type" in schema else []
    if "anyOf" in schema and not any(not validate(option, value, path) for option in schema["anyOf"]):
        return [_type_error(schema["anyOf"][0], value, path)]
    expected = schema.get("type")
    if expected and not _has_type(value, expected):
        return [_type_error(schema, value, path)]
    causes = _check_scalar(schema, value, path)
    if isinstance(value, dict):
        causes += _check_object(schema, value, path)
    elif isinstance(value, list):
        causes += _check_array(schema, value, path)
    return causes


def _has_type(value: Any, expected: str) -> bool:
    actual = json_type(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _type_error(schema: dict[str, Any], value: Any, path: str) -> Cause:
    actual = json_type(value)
    message = f'Invalid value: "{actual}": {path} in body must be of type {schema.get("type")}: "{actual}"'
    return Cause("FieldValueTypeInvalid", path, message)


def _check_scalar(schema: dict[str, Any], value: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(option) for option in schema["enum"])
        message = f"Unsupported value: {json.dumps(value)}: supported values: {supported}"
        causes.append(Cause("FieldValueNotSupported", path, message))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "maximum" in schema and value > schema["maximum"]:
            message = f"Invalid value: {value}: {path} in body should be less than or equal to {schema['maximum']}"
            causes.append(Cause("FieldValueInvalid", path, message))
        if "minimum" in schema and value < schema["minimum"]:
            message = f"Invalid value: {value}: {path} in body should be greater than or equal to {schema['minimum']}"
            causes.append(Cause("FieldValueInvalid", path, message))
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(Cause("FieldValueTooLong", path, f"Too long: may not be more than {schema['maxLength']} bytes"))
    return causes


def _check_object(schema: dict[str, Any], value: dict[str, Any], path: str) -> list[Cause]:
    causes = [
        Cause("FieldValueRequired", _join(path, name), "Required value")
        for name in schema.get("required", [])
        if name not in value
    ]
    props = schema.get("properties", {})
    for key, item in value.items():
        if key in props:
            causes += validate(props[key], item, _join(path, key))
        elif isinstance(schema.get("additionalProperties"), dict):
            causes += validate(schema["additionalProperties"], item, f"{path}[{key}]")
    for rule in schema.get("x-kubernetes-validations", []):
        compiled = compile_rule(rule)
        if not compiled.holds(value):
            causes.append(Cause("FieldValueInvalid", path, f'Invalid value: "object": {compiled.message}'))
    return causes


def _check_array(schema: dict[str, Any], value: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(
            Cause("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items")
        )
    if "minItems" in schema and len(value) < schema["minItems"]:
        message = f"Invalid value: {len(value)}: {path} in body should have at least {schema['minItems']} items"
        causes.append(Cause("FieldValueInvalid", path, message))
    if "items" in schema:
        for index, item in enumerate(value):
            causes += validate(schema["items"], item, f"{path}[{index}]")
    return causes


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_object(schema: dict[str, Any], obj: dict[str, Any]) -> list[Cause]:
    """Validate the non-metadata part of a pruned custom object."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    return validate(schema, body, "")
