"""The kinds kubesim serves and the per-kind admission the apiserver does (defaults, validation)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from kubesim import schema
from kubesim.errors import Cause, Target, bad_request, invalid

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TLS_SECRET_TYPE = "kubernetes.io/tls"


@dataclass(frozen=True)
class Kind:
    resource: str
    kind: str
    group: str
    namespaced: bool
    # Custom resources count spec changes in metadata.generation and refuse updates without a resourceVersion.
    custom: bool
    short_names: tuple[str, ...] = ()

    def target(self, name: str = "") -> Target:
        return Target(self.resource, self.group, name, self.kind)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> str:
        """How the store tells kinds apart: the same plural may be served by several groups."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


NAMESPACES = Kind("namespaces", "Namespace", "", namespaced=False, custom=False, short_names=("ns",))
SECRETS = Kind("secrets", "Secret", "", namespaced=True, custom=False)
GATEWAYS = Kind("gateways", "Gateway", ISTIO_GROUP, namespaced=True, custom=True, short_names=("gw",))
# The operator the portal descends from: its GatewayService CRD, under both API groups it used.
OPERATOR_VERSION = "v1alpha1"
OPERATOR_KINDS = {
    group: Kind("gatewayservices", "GatewayService", group, namespaced=True, custom=True, short_names=("gs",))
    for group in ("gatewayservice.xunholy.github.com", "crd.xunholy.github.com")
}


def admit(kind: Kind, obj: dict[str, Any], version: str) -> dict[str, Any]:
    """Default, prune and validate an incoming object; raises ApiError(422/400) like the apiserver."""
    if kind is GATEWAYS:
        return _admit_gateway(obj, version)
    if kind is SECRETS:
        return _admit_secret(obj)
    if kind.group in OPERATOR_KINDS:
        return _admit_custom(kind, obj, version, schema.crd_schemas()[(kind.group, version)])
    return _admit_namespace(obj)


def check_name(kind: Kind, name: str) -> list[Cause]:
    pattern, what = (
        (_DNS1123_LABEL, "RFC 1123 label") if kind is NAMESPACES else (_DNS1123_SUBDOMAIN, "RFC 1123 subdomain")
    )
    if pattern.match(name) and len(name) <= (63 if kind is NAMESPACES else 253):
        return []
    message = (
        f'Invalid value: "{name}": a lowercase {what} must consist of lower case alphanumeric characters, '
        "'-' or '.', and must start and end with an alphanumeric character"
    )
    return [Cause("FieldValueInvalid", "metadata.name", message)]


def _admit_gateway(obj: dict[str, Any], version: str) -> dict[str, Any]:
    return _admit_custom(GATEWAYS, obj, version, schema.crd_versions()[version])


def _admit_custom(kind: Kind, obj: dict[str, Any], version: str, version_schema: dict[str, Any]) -> dict[str, Any]:
    expected = kind.api_version(version)
    if obj.get("apiVersion", expected) != expected:
        raise bad_request(
            f"the API version in the data ({obj['apiVersion']}) does not match the expected API version ({expected})"
        )
    pruned = schema.prune_object(version_schema, obj)
    name = pruned["metadata"].get("name", "")
    causes = check_name(kind, name) + schema.validate_object(version_schema, pruned)
    if causes:
        raise invalid(kind.target(name), causes)
    pruned["apiVersion"], pruned["kind"] = kind.api_version(version), kind.kind
    return pruned


def _admit_secret(obj: dict[str, Any]) -> dict[str, Any]:
    secret = {k: v for k, v in obj.items() if k in ("metadata", "data", "stringData", "type", "immutable")}
    data = dict(secret.pop("data", None) or {})
    for key, value in data.items():
        _check_base64(key, value)
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    secret["type"] = secret.get("type") or "Opaque"
    name = secret["metadata"].get("name", "")
    causes = check_name(SECRETS, name)
    if secret["type"] == TLS_SECRET_TYPE:
        causes += [
            Cause("FieldValueRequired", f"data[{key}]", "Required value")
            for key in ("tls.crt", "tls.key")
            if key not in data
        ]
    if causes:
        raise invalid(SECRETS.target(name), causes)
    if data:
        secret["data"] = data
    return {"kind": "Secret", "apiVersion": "v1", **secret}


def _check_base64(key: str, value: Any) -> None:
    # The apiserver decodes `data` as []byte while reading the body, so bad base64 is a 400, not a 422.
    if not isinstance(value, str):
        raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: data[{key}] must be a base64 string')
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data ({error})')


def _admit_namespace(obj: dict[str, Any]) -> dict[str, Any]:
    name = obj["metadata"].get("name", "")
    causes = check_name(NAMESPACES, name)
    if causes:
        raise invalid(NAMESPACES.target(name), causes)
    metadata = dict(obj["metadata"])
    metadata["labels"] = {**(metadata.get("labels") or {}), "kubernetes.io/metadata.name": name}
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise bad_request("metadata must be an object")
    return {**body, "metadata": dict(metadata or {})}


def reject_immutable_change(kind: Kind, old: dict[str, Any], new: dict[str, Any]) -> None:
    if kind is SECRETS and old.get("type") != new.get("type"):
        cause = Cause("FieldValueInvalid", "type", f'Invalid value: "{new.get("type")}": field is immutable')
        raise invalid(kind.target(new["metadata"]["name"]), [cause])
    if old.get("immutable") and (old.get("data") != new.get("data")):
        raise invalid(
            kind.target(new["metadata"]["name"]),
            [Cause("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set")],
        )


def require_name(kind: Kind, name: str) -> None:
    if not name:
        cause = Cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")
        raise invalid(kind.target(""), [cause])
