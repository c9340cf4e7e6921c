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
    return _compiled(schema).prune(value)


def prune_object(schema: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    """Prune a whole custom object: apiVersion/kind/metadata are implicit, the rest follows the schema."""
    body = prune(schema, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")})
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k in _OBJECT_META_FIELDS}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": metadata, **body}


def validate(schema: dict[str, Any], value: Any, path: str) -> list[Cause]:
    """All schema violations of `value`, each naming its field path like `spec.servers[0].port.number`."""
    return _compiled(schema).validate(value, path)


def _type_error(schema: dict[str, Any], value: Any, path: str) -> Cause:
    actual = json_type(value)
    message = f'Invalid value: "{actual}": {path} in body must be of type {schema.get("type")}: "{actual}"'
    return Cause("FieldValueTypeInvalid", path, message)


class _Node:
    """One schema node, read once: which checks apply to a value, and the nodes of its children.

    A Gateway of thousands of servers is checked against the same few nodes thousands of times; each node works
    out once what `validate` and `prune` ask of it instead of looking every keyword up again for every value.
    Children are read when first reached, and CEL rules are compiled when a value first reaches their node, so an
    unsupported rule fails where it always did.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.nullable = bool(schema.get("nullable"))
        self.typed = "type" in schema
        self.expected = schema.get("type")
        self.any_of = schema["anyOf"] if "anyOf" in schema else None
        self.enum = schema["enum"] if "enum" in schema else None
        self.bounded = "maximum" in schema or "minimum" in schema
        self.max_length = schema["maxLength"] if "maxLength" in schema else None
        self.scalar_checks = self.enum is not None or self.bounded or self.max_length is not None
        self.required = schema.get("required", [])
        self.has_properties = "properties" in schema
        self.properties: dict[str, Any] = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        self.additional = additional if isinstance(additional, dict) else None
        self.items = schema["items"] if "items" in schema else None
        self.array_bounds = "maxItems" in schema or "minItems" in schema
        self.rule_texts = schema.get("x-kubernetes-validations", [])
        # Pruning leaves every value of this node as it is: unknown fields are kept, or it has no fields to prune.
        self.keeps_all = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or not (
            self.has_properties or self.additional is not None or self.items is not None
        )
        # A node that checks nothing but a value's type: the types it accepts without looking further (None when it
        # checks more). `_check_object` skips the call for such values; anything else is validated in full.
        plain = not (
            self.any_of is not None
            or self.scalar_checks
            or self.required
            or self.has_properties
            or self.additional is not None
            or self.items is not None
            or self.array_bounds
            or self.rule_texts
        )
        self.plain_types = _ACCEPTED_TYPES.get(self.expected) if plain else None
        self._children: dict[str, _Node] = {}
        self._rules: list[AtMostOne] | None = None

    def child(self, key: str) -> _Node:
        node = self._children.get(key)
        if node is None:
            node = self._children[key] = _compiled(self.properties[key])
        return node

    def rules(self) -> list[AtMostOne]:
        if self._rules is None:
            self._rules = [compile_rule(rule) for rule in self.rule_texts]
        return self._rules

    def prune(self, value: Any) -> Any:
        if self.keeps_all:
            return value
        if isinstance(value, dict):
            if self.has_properties:
                pruned = {}
                for key, item in value.items():
                    if key in self.properties:
                        node = self.child(key)
                        pruned[key] = item if node.keeps_all else node.prune(item)
                return pruned
            if self.additional is not None:
                additional = _compiled(self.additional)
                return {k: additional.prune(v) for k, v in value.items()}
            return value
        if isinstance(value, list) and self.items is not None:
            items = _compiled(self.items)
            return value[:] if items.keeps_all else [items.prune(item) for item in value]
        return value

    def validate(self, value: Any, path: str) -> list[Cause]:
        if value is None:
            if self.nullable:
                return []
            return [_type_error(self.schema, value, path)] if self.typed else []
        if self.any_of is not None and not any(not _compiled(option).validate(value, path) for option in self.any_of):
            return [_type_error(self.any_of[0], value, path)]
        expected = self.expected
        if expected:
            actual = _JSON_TYPES.get(type(value), "object")
            if actual != expected and not (expected == "number" and actual == "integer"):
                return [_type_error(self.schema, value, path)]
        causes = self._check_scalar(value, path) if self.scalar_checks else []
        if isinstance(value, dict):
            causes += self._check_object(value, path)
        elif isinstance(value, list):
            causes += self._check_array(value, path)
        return causes

    def _check_scalar(self, value: Any, path: str) -> list[Cause]:
        schema, causes = self.schema, []
        if self.enum is not None and value not in self.enum:
            supported = ", ".join(json.dumps(option) for option in self.enum)
            message = f"Unsupported value: {json.dumps(value)}: supported values: {supported}"
            causes.append(Cause("FieldValueNotSupported", path, message))
        if self.bounded and isinstance(value, int | float) and not isinstance(value, bool):
            if "maximum" in schema and value > schema["maximum"]:
                message = f"Invalid value: {value}: {path} in body should be less than or equal to {schema['maximum']}"
                causes.append(Cause("FieldValueInvalid", path, message))
            if "minimum" in schema and value < schema["minimum"]:
                message = (
                    f"Invalid value: {value}: {path} in body should be greater than or equal to {schema['minimum']}"
                )
                causes.append(Cause("FieldValueInvalid", path, message))
        if self.max_length is not None and isinstance(value, str) and len(value) > self.max_length:
            causes.append(Cause("FieldValueTooLong", path, f"Too long: may not be more than {self.max_length} bytes"))
        return causes

    def _check_object(self, value: dict[str, Any], path: str) -> list[Cause]:
        causes = [
            Cause("FieldValueRequired", _join(path, name), "Required value")
            for name in self.required
            if name not in value
        ]
        props = self.properties
        additional = _compiled(self.additional) if self.additional is not None else None
        for key, item in value.items():
            if key in props:
                node = self.child(key)
                if node.plain_types is None or type(item) not in node.plain_types:
                    causes += node.validate(item, _join(path, key))
            elif additional is not None:
                causes += additional.validate(item, f"{path}[{key}]")
        if self.rule_texts:
            for compiled in self.rules():
                if not compiled.holds(value):
                    causes.append(Cause("FieldValueInvalid", path, f'Invalid value: "object": {compiled.message}'))
        return causes

    def _check_array(self, value: list[Any], path: str) -> list[Cause]:
        schema, causes = self.schema, []
        if self.array_bounds:
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                message = f"Too many: {len(value)}: must have at most {schema['maxItems']} items"
                causes.append(Cause("FieldValueTooMany", path, message))
            if "minItems" in schema and len(value) < schema["minItems"]:
                message = f"Invalid value: {len(value)}: {path} in body should have at least {schema['minItems']} items"
                causes.append(Cause("FieldValueInvalid", path, message))
        if self.items is not None:
            items = _compiled(self.items)
            for index, item in enumerate(value):
                causes += items.validate(item, f"{path}[{index}]")
        return causes


_ACCEPTED_TYPES: dict[str | None, frozenset[type]] = {
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "number": frozenset({int, float}),
    "boolean": frozenset({bool}),
    "object": frozenset({dict}),
    "array": frozenset({list}),
}

# Nodes by schema identity. Each entry keeps its schema alive, so that an id is never reused while its node is
# cached; the CRDs' schemas are read once (`crd_versions`, `crd_schemas`) and live as long as the process.
_NODES: dict[int, tuple[dict[str, Any], _Node]] = {}


def _compiled(schema: dict[str, Any]) -> _Node:
    entry = _NODES.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _NODES[id(schema)] = (schema, _Node(schema))
    return entry[1]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_object(schema: dict[str, Any], obj: dict[str, Any]) -> list[Cause]:
    """Validate the non-metadata part of a pruned custom object."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    return validate(schema, body, "")
