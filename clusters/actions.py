"""Writes on clusters: atomic, audited, then reconciled after commit (`clusters.enqueue`)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.actions import audit_record, diff
from clusters import kube, kubeconfig
from clusters.enqueue import request_reconcile
from clusters.kubeconfig import KubeconfigError
from clusters.models import Cluster
from gatewayportal.exceptions import DomainError
from services.actions import remove_finished_services
from services.choices import TRAFFIC_TYPES

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
_GATEWAY_REF = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?")


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
    remove_finished_services(service_ids)


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
            insecure = kubeconfig.insecure_problems(
                fields["kubeconfig"], allow_insecure=settings.ALLOW_INSECURE_CLUSTERS
            )
            if insecure:
                errors["kubeconfig"] = insecure
    elif fields.get("api_server"):
        problem = kubeconfig.api_server_problem(
            str(fields["api_server"]), allow_insecure=settings.ALLOW_INSECURE_CLUSTERS
        )
        if problem:
            errors["api_server"] = [problem]
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
