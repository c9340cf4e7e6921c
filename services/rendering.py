"""Pure rendering: a service spec + one cluster's settings -> the Istio server block and TLS Secret.

Naming follows the operator the portal descends from: port name `<protocol>-<name>-<namespace>`
(lower case), secret `<name>-<namespace>-secret`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gatewayportal"
SERVICE_LABEL = "gatewayportal.io/service"
TEAM_LABEL = "gatewayportal.io/team"
MANAGED_SERVERS_ANNOTATION = "gatewayportal.io/managed-servers"
# Stands in while no other server would remain: Istio's webhook refuses a Gateway without servers. The host is
# under `.invalid` (RFC 2606), so it can never match a real request.
DEFAULT_PLACEHOLDER_SERVER: dict[str, Any] = {
    "port": {"number": 80, "name": "http-gatewayportal-placeholder", "protocol": "HTTP"},
    "hosts": ["placeholder.gatewayportal.invalid"],
}


@dataclass(frozen=True)
class GatewaySettings:
    """What rendering needs to know about one cluster's gateway."""

    namespace_scoped_hosts: bool = True
    secret_namespace: str = "istio-system"
    # The cluster's placeholder server (`Cluster.placeholder_server`); None: the default one.
    placeholder: Mapping[str, Any] | None = field(default=None, hash=False)


def placeholder_server(settings: GatewaySettings) -> dict[str, Any]:
    return copy.deepcopy(dict(settings.placeholder or DEFAULT_PLACEHOLDER_SERVER))


def port_name(spec: dict[str, Any]) -> str:
    return f"{spec['protocol']}-{spec['name']}-{spec['namespace']}".lower()


def secret_name(spec: dict[str, Any]) -> str:
    return f"{spec['name']}-{spec['namespace']}-secret"


def credential_name(spec: dict[str, Any]) -> str | None:
    """The credentialName written into the block, if the block uses one."""
    tls_options = spec.get("tls_options") or {}
    if spec.get("mode") in (None, "PASSTHROUGH"):
        return None
    if "tls_secret" in tls_options:
        return secret_name(spec)
    if "tls_secret_ref" in tls_options:
        return tls_options["tls_secret_ref"]["secret_name"]
    return None


def render_hosts(spec: dict[str, Any], settings: GatewaySettings) -> list[str]:
    if not settings.namespace_scoped_hosts:
        return list(spec["hosts"])
    return [f"{spec['namespace']}/{host}" for host in spec["hosts"]]


def render_tls(spec: dict[str, Any]) -> dict[str, Any] | None:
    mode = spec.get("mode")
    tls: dict[str, Any] = {}
    if mode:
        tls["mode"] = mode
        tls_options = spec.get("tls_options") or {}
        if mode != "PASSTHROUGH":
            if "tls_secret" in tls_options or "tls_secret_ref" in tls_options:
                tls["credentialName"] = credential_name(spec)
            elif "tls_secret_path" in tls_options:
                paths = tls_options["tls_secret_path"]
                tls["serverCertificate"] = paths["cert_path"]
                tls["privateKey"] = paths["key_path"]
                if paths.get("ca_cert_path"):
                    tls["caCertificates"] = paths["ca_cert_path"]
            # A passthrough gateway does not terminate TLS, so versions would mean nothing there.
            if spec.get("min_protocol_version"):
                tls["minProtocolVersion"] = spec["min_protocol_version"]
            if spec.get("max_protocol_version"):
                tls["maxProtocolVersion"] = spec["max_protocol_version"]
    if spec.get("https_redirect"):
        tls["httpsRedirect"] = True
    return tls or None


def render_server(spec: dict[str, Any], settings: GatewaySettings) -> dict[str, Any]:
    """The server block exactly as written into the Gateway (Istio camelCase)."""
    server: dict[str, Any] = {
        "port": {"number": spec["port"], "name": port_name(spec), "protocol": spec["protocol"]},
        "hosts": render_hosts(spec, settings),
    }
    tls = render_tls(spec)
    if tls:
        server["tls"] = tls
    return server


def scoped_server(block: dict[str, Any], spec: dict[str, Any], settings: GatewaySettings) -> dict[str, Any]:
    """A stored plain-hosts block (`render_revision`) as this cluster writes it: the one per-cluster transform.

    Without scoping it is the stored block itself, shared by every plan made from the same desired state: callers
    must not change it."""
    if not settings.namespace_scoped_hosts:
        return block
    return {**block, "hosts": [f"{spec['namespace']}/{host}" for host in block["hosts"]]}


def digest(value: Any) -> str:
    """sha256 of canonical JSON: what the worker compares instead of the rendered objects themselves."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def secret_digest(secret: Mapping[str, Any]) -> str:
    """What the portal compares to decide whether a secret it owns must be rewritten."""
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return digest({"type": secret.get("type"), "data": secret.get("data") or {}, "labels": labels})


@dataclass(frozen=True)
class Rendering:
    """What a revision stores when it is written: its block (plain hosts; `scoped_server` adds the namespace
    prefix on clusters that scope hosts) and digests of the block and of its Secret ('' when it has none)."""

    block: dict[str, Any]
    block_digest: str
    secret_digest: str


def render_revision(spec: dict[str, Any], material: dict[str, Any] | None, *, service_id: str, team: str) -> Rendering:
    block = render_server(spec, GatewaySettings(namespace_scoped_hosts=False))
    # The Secret's namespace is per cluster, but its digest covers type, data and labels only.
    secret = render_secret(spec, material, GatewaySettings(), service_id=service_id, team=team)
    return Rendering(block, digest(block), secret_digest(secret) if secret else "")


def block_bytes(spec: dict[str, Any]) -> int:
    """What a service's block adds to a Gateway: the server as compact JSON (with namespace-scoped hosts, the
    longer form) and its port name in the managed-servers annotation. Cheap, and the same on every cluster."""
    server = render_server(spec, GatewaySettings())
    return len(json.dumps(server, separators=(",", ":"))) + len(server["port"]["name"]) + 1


def secret_target_namespace(spec: dict[str, Any], settings: GatewaySettings) -> str:
    """SIMPLE/MUTUAL secrets live beside the gateway workload; PASSTHROUGH ones in the service's namespace."""
    return spec["namespace"] if spec.get("mode") == "PASSTHROUGH" else settings.secret_namespace


def render_secret(
    spec: dict[str, Any],
    material: dict[str, Any] | None,
    settings: GatewaySettings,
    *,
    service_id: str,
    team: str,
) -> dict[str, Any] | None:
    """The kubernetes.io/tls Secret for a `tls_secret` service, or None when it needs none."""
    if "tls_secret" not in (spec.get("tls_options") or {}) or not material:
        return None
    data = {
        "tls.crt": _b64(material["cert"]),
        "tls.key": _b64(material["key"]),
    }
    if spec.get("mode") == "MUTUAL" and material.get("ca_cert"):
        data["ca.crt"] = _b64(material["ca_cert"])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": secret_name(spec),
            "namespace": secret_target_namespace(spec, settings),
            "labels": managed_labels(service_id=service_id, team=team),
        },
        "data": data,
    }


def managed_labels(*, service_id: str, team: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, SERVICE_LABEL: str(service_id), TEAM_LABEL: team}


def _b64(pem: str) -> str:
    return base64.b64encode(pem.encode()).decode()
