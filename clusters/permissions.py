"""What the portal's credentials must be allowed to do on a managed cluster.

The one list both sides read: the connection check asks for each of these with a
SelfSubjectAccessReview, and `deploy/target-cluster/` RBAC grants exactly these (a test holds
the two together). `namespace_kind` says which namespace a permission is needed in:

- "gateway": the Gateway resource's namespace (from `ingress_gateway` / `egress_gateway`);
- "secret": where SIMPLE and MUTUAL secrets go (`Cluster.secret_namespace(traffic_type)`);
- "service": a team's namespace, where PASSTHROUGH secrets go;
- "cluster": a cluster-scoped resource (no namespace).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

NamespaceKind = Literal["gateway", "secret", "service", "cluster"]


class Permission(NamedTuple):
    verb: str
    group: str  # "" is the core API group
    resource: str
    namespace_kind: NamespaceKind


REQUIRED_PERMISSIONS: list[Permission] = [
    *(Permission(verb, "networking.istio.io", "gateways", "gateway") for verb in ("get", "list", "update", "patch")),
    *(Permission(verb, "", "secrets", "secret") for verb in ("create", "get", "update", "delete", "list")),
    *(Permission(verb, "", "secrets", "service") for verb in ("create", "get", "update", "delete")),
    Permission("get", "", "namespaces", "cluster"),
]
