"""Cluster connection checks: reachability, version, Istio API, both Gateways and RBAC, saved as the health."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from clusters import kube
from clusters.models import Cluster
from clusters.permissions import REQUIRED_PERMISSIONS, Permission
from services.choices import TRAFFIC_TYPES


def cluster_check(*, cluster: Cluster, permissions: bool = True) -> dict[str, Any]:
    """Connect now: reachability, version, Istio API, both Gateways, and (optionally) RBAC. Saves the health."""
    report: dict[str, Any] = {
        "cluster": cluster.name,
        "reachable": False,
        "version": "",
        "istio_api_version": "",
        "gateways": {},
        "permissions": [],
        "ok": False,
        "message": "",
    }
    try:
        client = kube.client_for(cluster)
        report["version"] = client.server_version()
        report["reachable"] = True
        report["istio_api_version"] = client.istio_api_version()
        for traffic_type in TRAFFIC_TYPES:
            report["gateways"][traffic_type] = _gateway_exists(client, cluster, traffic_type)
        if permissions:
            report["permissions"] = [_review(client, cluster, p, ns) for p, ns in _permission_targets(cluster)]
    except kube.KubeError as exc:
        report["message"] = exc.message
    problems = [f"{tt} Gateway {g['ref']}: {g['message']}" for tt, g in report["gateways"].items() if not g["exists"]]
    denied = [p for p in report["permissions"] if not p["allowed"]]
    if denied:
        problems.append(
            "missing permissions: "
            + "; ".join(f"{p['verb']} {p['resource']} in {p['namespace'] or 'the cluster'}" for p in denied)
        )
    if report["reachable"] and not report["message"]:
        report["message"] = "; ".join(problems)
    report["ok"] = report["reachable"] and not report["message"]
    _save_health(cluster, report)
    return report


def _gateway_exists(client: kube.KubeClient, cluster: Cluster, traffic_type: str) -> dict[str, Any]:
    namespace, name = cluster.gateway_ref(traffic_type)
    try:
        client.get_gateway(namespace, name)
    except kube.NotFoundError:
        return {"ref": f"{namespace}/{name}", "exists": False, "message": "not found"}
    except kube.PermanentError as exc:
        return {"ref": f"{namespace}/{name}", "exists": False, "message": exc.message}
    return {"ref": f"{namespace}/{name}", "exists": True, "message": ""}


def _permission_targets(cluster: Cluster) -> list[tuple[Permission, str | None]]:
    from services.models import Team

    team_namespaces = sorted(
        {ns for namespaces in Team.objects.values_list("namespaces", flat=True) for ns in namespaces}
    )
    targets: list[tuple[Permission, str | None]] = []
    for permission in REQUIRED_PERMISSIONS:
        if permission.namespace_kind == "cluster":
            namespaces: list[str | None] = [None]
        elif permission.namespace_kind == "gateway":
            namespaces = sorted({cluster.gateway_ref(tt)[0] for tt in TRAFFIC_TYPES})
        elif permission.namespace_kind == "secret":
            namespaces = sorted({cluster.secret_namespace(tt) for tt in TRAFFIC_TYPES})
        else:
            namespaces = list(team_namespaces)
        targets += [(permission, ns) for ns in namespaces]
    return targets


def _review(client: kube.KubeClient, cluster: Cluster, permission: Permission, namespace: str | None) -> dict[str, Any]:
    allowed, reason = client.can_i(
        verb=permission.verb, group=permission.group, resource=permission.resource, namespace=namespace
    )
    return {
        "verb": permission.verb,
        "group": permission.group,
        "resource": permission.resource,
        "namespace": namespace,
        "allowed": allowed,
        "reason": reason,
    }


def _save_health(cluster: Cluster, report: dict[str, Any]) -> None:
    cluster.reachable = report["reachable"]
    cluster.checked_at = timezone.now()
    cluster.health_message = report["message"]
    if report["istio_api_version"]:
        cluster.istio_api_version = report["istio_api_version"]
    Cluster.objects.filter(pk=cluster.pk).update(
        reachable=cluster.reachable,
        checked_at=cluster.checked_at,
        health_message=cluster.health_message,
        istio_api_version=cluster.istio_api_version,
    )
