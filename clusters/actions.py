"""Writes on clusters (atomic, audited) and the coalesced reconcile requests every gateway-affecting write makes."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from typing import Any

import kombu.exceptions
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.actions import audit_record, diff
from clusters import converge, kube
from clusters.kubeconfig import KubeconfigError
from clusters.models import Cluster
from clusters.permissions import REQUIRED_PERMISSIONS, Permission
from gatewayportal.exceptions import DomainError
from services.choices import TRAFFIC_TYPES

# Writes to one gateway within this window produce one reconcile.
COALESCE_SECONDS = 0.1
PENDING_TTL_SECONDS = 60
# More than BURST_REQUESTS requests for one gateway within BURST_WINDOW_SECONDS (faster than a person or a
# pipeline applying changes one by one, about 5 a second) switch it to burst mode for
# BURST_HOLD_SECONDS: reconciles then wait BURST_COALESCE_SECONDS, so an import of hundreds of services
# becomes a handful of Gateway writes while a single change still lands within a fraction of a second.
BURST_REQUESTS = 10
BURST_WINDOW_SECONDS = 2
BURST_HOLD_SECONDS = 10
BURST_COALESCE_SECONDS = 8.0
CREDENTIAL_FIELDS = ("api_server", "ca_cert", "token", "kubeconfig")
EDITABLE_FIELDS = (
    "name",
    "labels",
    "enabled",
    "requires_approval",
    "ingress_gateway",
    "egress_gateway",
    "ingress_secret_namespace",
    "egress_secret_namespace",
    "namespace_scoped_hosts",
    *CREDENTIAL_FIELDS,
)
logger = logging.getLogger(__name__)
_GATEWAY_REF = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?")


# --- Reconcile requests ---------------------------------------------------------------------------------------------


def request_reconcile(*, cluster_ids: Iterable[int], traffic_type: str) -> None:
    """Enqueue a reconcile of each cluster's gateway once the current transaction commits (coalesced)."""
    ids = sorted(set(cluster_ids))
    if ids:
        transaction.on_commit(lambda: _enqueue(ids, traffic_type))


def _enqueue(cluster_ids: list[int], traffic_type: str) -> None:
    for cluster_id in cluster_ids:
        try:
            _enqueue_one(cluster_id, traffic_type)
        except (redis.exceptions.RedisError, kombu.exceptions.OperationalError) as exc:
            # The write has committed and must not fail now; the periodic sweep reconciles every gateway.
            logger.warning(
                "could not enqueue a reconcile of cluster %s/%s; the sweep will pick it up: %s",
                cluster_id,
                traffic_type,
                exc,
            )


def _enqueue_one(cluster_id: int, traffic_type: str) -> None:
    from clusters.tasks import reconcile_gateway  # the task module imports this one

    countdown = COALESCE_SECONDS
    marked = False
    if settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        countdown = _countdown(cluster_id, traffic_type)
        # Already queued and not started yet: that run will read this change too.
        marked = bool(
            converge.redis_client().set(_pending_key(cluster_id, traffic_type), "1", nx=True, ex=PENDING_TTL_SECONDS)
        )
        if not marked:
            return
    try:
        reconcile_gateway.apply_async((cluster_id, traffic_type), countdown=countdown)
    except kombu.exceptions.OperationalError:
        if marked:
            # Nothing is queued after all: the marker must not hold back the next request's enqueue.
            with contextlib.suppress(redis.exceptions.RedisError):
                clear_pending(cluster_id, traffic_type)
        raise


def _countdown(cluster_id: int, traffic_type: str) -> float:
    """Short normally; long while the gateway receives a burst of changes (see BURST_*)."""
    client = converge.redis_client()
    key = f"{converge.key_prefix()}:rate:{cluster_id}:{traffic_type}"
    burst_key = f"{converge.key_prefix()}:burst:{cluster_id}:{traffic_type}"
    count, bursting = client.pipeline().incr(key).exists(burst_key).execute()
    if count == 1:
        client.expire(key, BURST_WINDOW_SECONDS)
    if count > BURST_REQUESTS:
        client.set(burst_key, "1", ex=BURST_HOLD_SECONDS)
        bursting = True
    return BURST_COALESCE_SECONDS if bursting else COALESCE_SECONDS


def clear_pending(cluster_id: int, traffic_type: str) -> None:
    if settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        converge.redis_client().delete(_pending_key(cluster_id, traffic_type))


def _pending_key(cluster_id: int, traffic_type: str) -> str:
    return f"{converge.key_prefix()}:pending:{cluster_id}:{traffic_type}"


# --- Cluster writes -------------------------------------------------------------------------------------------------


@transaction.atomic
def cluster_create(**fields: Any) -> Cluster:
    """Register a cluster: credentials checked for shape (not connected), stored encrypted, audited."""
    cluster = Cluster()
    _apply(cluster, fields, creating=True)
    cluster.save()
    audit_record(
        action="cluster.created",
        object_type="cluster",
        object_id=str(cluster.pk),
        object_repr=cluster.name,
        cluster=cluster.name,
        changes=_public({name: [None, getattr(cluster, name)] for name in EDITABLE_FIELDS if getattr(cluster, name)}),
    )
    for traffic_type in TRAFFIC_TYPES:
        request_reconcile(cluster_ids=[cluster.pk], traffic_type=traffic_type)
    return cluster


@transaction.atomic
def cluster_update(*, cluster: Cluster, **fields: Any) -> Cluster:
    before = {name: getattr(cluster, name) for name in EDITABLE_FIELDS}
    _apply(cluster, fields, creating=False)
    after = {name: getattr(cluster, name) for name in EDITABLE_FIELDS}
    changes = diff(before, after)
    if not changes:
        return cluster
    cluster.save()
    audit_record(
        action="cluster.updated",
        object_type="cluster",
        object_id=str(cluster.pk),
        object_repr=cluster.name,
        cluster=cluster.name,
        changes=_public(changes),
    )
    for traffic_type in TRAFFIC_TYPES:
        request_reconcile(cluster_ids=[cluster.pk], traffic_type=traffic_type)
    return cluster


@transaction.atomic
def cluster_delete(*, cluster: Cluster) -> None:
    """Forget a cluster. Nothing is removed from it: the portal simply stops managing its gateways."""
    audit_record(
        action="cluster.deleted",
        object_type="cluster",
        object_id=str(cluster.pk),
        object_repr=cluster.name,
        cluster=cluster.name,
    )
    service_ids = [str(sid) for sid in cluster.service_statuses.values_list("service_id", flat=True)]
    cluster.delete()
    # Services being deleted that were waiting only for this cluster are done now.
    converge.remove_finished_services(service_ids)


def _apply(cluster: Cluster, fields: dict[str, Any], *, creating: bool) -> None:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise DomainError(
            {name: [f"unknown field; accepted: {', '.join(EDITABLE_FIELDS)}"] for name in sorted(unknown)}
        )
    errors: dict[str, list[str]] = {}
    for ref_field in ("ingress_gateway", "egress_gateway"):
        if ref_field in fields and not _GATEWAY_REF.fullmatch(fields[ref_field] or ""):
            errors[ref_field] = ["give the Gateway as '<namespace>/<name>', e.g. 'istio-system/ingress-gateway'"]
    if fields.get("kubeconfig"):
        try:
            summary = kube.validate_kubeconfig(fields["kubeconfig"])
        except KubeconfigError as exc:
            errors["kubeconfig"] = [str(exc)]
        else:
            fields = {**fields, "api_server": summary.server, "ca_cert": "", "token": ""}
    elif (
        "api_server" in fields
        and fields["api_server"]
        and not str(fields["api_server"]).startswith(("https://", "http://"))
    ):
        errors["api_server"] = ["give the API server URL, e.g. 'https://10.0.0.1:6443'"]
    if errors:
        raise DomainError(errors)
    credentials_before = [getattr(cluster, name) for name in CREDENTIAL_FIELDS]
    for name, value in fields.items():
        setattr(cluster, name, value if value is not None or name.endswith("secret_namespace") else "")
    if not cluster.kubeconfig and not cluster.api_server:
        raise DomainError({"api_server": ["give api_server (with token and ca_cert) or a kubeconfig"]})
    if creating or credentials_before != [getattr(cluster, name) for name in CREDENTIAL_FIELDS]:
        cluster.credentials_updated_at = timezone.now()


def _public(changes: dict[str, Any]) -> dict[str, Any]:
    """Credentials are recorded as changed, never with their values."""
    return {
        name: ["[redacted]" if v else v for v in value] if name in ("token", "kubeconfig", "ca_cert") else value
        for name, value in changes.items()
    }


# --- Connection check -----------------------------------------------------------------------------------------------


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
