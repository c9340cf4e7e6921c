"""Discovery documents: /version, /api, /api/v1, /apis, /apis/{group}[/{version}]."""

from __future__ import annotations

from typing import Any

# The kinds kubesim.server serves are the kinds described here: the two import lists look alike on purpose.
from kubesim.resources import (
    GATEWAYS,
    ISTIO_GROUP,
    ISTIO_VERSIONS,
    NAMESPACES,
    OPERATOR_KINDS,
    OPERATOR_VERSION,
    SECRETS,
    Kind,
)

AUTHORIZATION_GROUP = "authorization.k8s.io"
VERBS = ["create", "delete", "get", "list", "patch", "update"]
VERSION_INFO = {
    "major": "1",
    "minor": "33",
    "emulationMajor": "1",
    "emulationMinor": "33",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "32",
    "gitVersion": "v1.33.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def preferred_istio_version(served: tuple[str, ...]) -> str:
    return next(version for version in ISTIO_VERSIONS if version in served)


def _resource(kind: Kind, verbs: list[str] = VERBS, categories: tuple[str, ...] = ()) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": kind.resource,
        "singularName": kind.singular,
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": verbs,
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if categories:
        entry["categories"] = list(categories)
    return entry


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def core_resources() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [_resource(NAMESPACES), _resource(SECRETS)],
    }


def _group(name: str, versions: tuple[str, ...], preferred: str) -> dict[str, Any]:
    def entry(version: str) -> dict[str, str]:
        return {"groupVersion": f"{name}/{version}", "version": version}

    return {"name": name, "versions": [entry(v) for v in versions], "preferredVersion": entry(preferred)}


def groups(istio_versions: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    found = {AUTHORIZATION_GROUP: _group(AUTHORIZATION_GROUP, ("v1",), "v1")}
    if istio_versions:
        found[ISTIO_GROUP] = _group(ISTIO_GROUP, istio_versions, preferred_istio_version(istio_versions))
    for group in OPERATOR_KINDS:
        found[group] = _group(group, (OPERATOR_VERSION,), OPERATOR_VERSION)
    return found


def group_list(istio_versions: tuple[str, ...]) -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(groups(istio_versions).values())}


def group_resources(group: str, version: str) -> dict[str, Any]:
    if group == AUTHORIZATION_GROUP:
        resources = [
            {
                "name": "selfsubjectaccessreviews",
                "singularName": "selfsubjectaccessreview",
                "namespaced": False,
                "kind": "SelfSubjectAccessReview",
                "verbs": ["create"],
            }
        ]
    elif group in OPERATOR_KINDS:
        resources = [_resource(OPERATOR_KINDS[group])]
    else:
        resources = [_resource(GATEWAYS, categories=("istio-io", "networking-istio-io"))]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}", "resources": resources}
