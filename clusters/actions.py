"""Writes on clusters: atomic, audited, then reconciled after commit (`clusters.enqueue`)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
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
from services.models import Team

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
    _audit(
        cluster,
        "cluster.created",
        {name: [None, getattr(cluster, name)] for name in EDITABLE_FIELDS if getattr(cluster, name)},
    )
    _reconcile_gateways(cluster)
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
    _audit(cluster, "cluster.updated", changes)
    _reconcile_gateways(cluster)
    return cluster


@transaction.atomic
def cluster_delete(*, cluster: Cluster) -> None:
    """Forget a cluster. Nothing is removed from it: the portal simply stops managing its gateways."""
    _audit(cluster, "cluster.deleted")
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


def _audit(cluster: Cluster, action: str, changes: dict[str, Any] | None = None) -> None:
    audit_record(
        action=action,
        object_type="cluster",
        object_id=str(cluster.pk),
        object_repr=cluster.name,
        cluster=cluster.name,
        changes=None if changes is None else _public(changes),
    )


def _reconcile_gateways(cluster: Cluster) -> None:
    """Both of the cluster's gateways converge after commit (its credentials or Gateways may have changed)."""
    for traffic_type in TRAFFIC_TYPES:
        request_reconcile(cluster_ids=[cluster.pk], traffic_type=traffic_type)


def _public(changes: dict[str, Any]) -> dict[str, Any]:
    """Credentials are recorded as changed, never with their values."""
    return {
        name: ["[redacted]" if v else v for v in value] if name in ("token", "kubeconfig", "ca_cert") else value
        for name, value in changes.items()
    }


# --- Adopting live servers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adoption:
    """One unmanaged server of a cluster's Gateway to turn into a team's gateway service."""

    traffic_type: str
    port_name: str
    team: Team
    name: str
    namespace: str


def gateway_servers_adopt(
    *, cluster: Cluster, adoptions: dict[str, Adoption], user=None, dry_run: bool = False
) -> dict[str, Any]:
    """Adopts every server or none: DomainError {key: errors} names each refused one.

    A service is created for each server from the server itself (its Secret kept as a `tls_secret_ref`), and the
    server's port name is recorded as managed in the gateway's state under the worker's lock. When the portal
    renders the service exactly as the server is, the next reconcile writes nothing; otherwise it replaces that
    server in one Gateway write. The answer says which, per gateway, from the planner itself.
    """
    from clusters import adoption
    from clusters.desired import collect_desired, gateway_settings, read_facts
    from clusters.models import GatewayState, gateway_lock_key
    from clusters.reconcile import plan_gateway, server_name, split_servers
    from gatewayportal.locks import try_advisory_lock
    from services.actions import gateway_service_create_from_payload
    from services.rendering import render_server

    traffic_types = sorted({a.traffic_type for a in adoptions.values()})
    lives: dict[str, dict[str, Any]] = {}
    for traffic_type in traffic_types:
        namespace, name = cluster.gateway_ref(traffic_type)
        try:
            client = kube.client_for(cluster)
            client.remember_istio_api_version(cluster.istio_api_version)
            lives[traffic_type] = client.get_gateway(namespace, name)
        except kube.KubeError as exc:
            raise DomainError({"gateway": [f"The {traffic_type} Gateway could not be read: {exc.message}"]})
    results: list[dict[str, Any]] = []
    errors: dict[str, Any] = {}
    with contextlib.ExitStack() as locks, transaction.atomic():
        for traffic_type in traffic_types:
            if not locks.enter_context(try_advisory_lock(gateway_lock_key(cluster.pk, traffic_type))):
                raise DomainError({"gateway": [f"The {traffic_type} Gateway is being reconciled; try again shortly."]})
        states = {
            tt: GatewayState.objects.select_for_update().get_or_create(cluster=cluster, traffic_type=tt)[0]
            for tt in traffic_types
        }
        # Created in the live Gateway's order: the portal writes its servers oldest service first, so an adopted
        # run of servers stays where it is.
        for key, wanted in sorted(adoptions.items(), key=lambda item: _live_position(lives, item[1])):
            state, live = states[wanted.traffic_type], lives[wanted.traffic_type]
            unmanaged, _ = split_servers(live, state.managed_servers)
            server = next((s for s in unmanaged if server_name(s) == wanted.port_name), None)
            if server is None:
                names = ", ".join(server_name(s) or "(unnamed)" for s in unmanaged) or "none"
                errors[key] = {
                    "port_name": [
                        f"No unmanaged server named '{wanted.port_name}' on the {wanted.traffic_type} Gateway. "
                        f"Unmanaged servers: {names}."
                    ]
                }
                continue
            payload = adoption.server_to_payload(
                server,
                name=wanted.name,
                namespace=wanted.namespace,
                traffic_type=wanted.traffic_type,
                cluster=cluster.name,
            )
            try:
                with transaction.atomic():
                    service, _ = gateway_service_create_from_payload(payload=payload, team=wanted.team, user=user)
            except DomainError as exc:
                errors[key] = exc.errors
                continue
            state.managed_servers = sorted(set(state.managed_servers) | {wanted.port_name})
            state.adopted_servers = sorted(
                (set(state.adopted_servers) & set(state.managed_servers)) | {wanted.port_name}
            )
            rendered = render_server(service.current_revision.spec, gateway_settings(cluster, wanted.traffic_type))
            audit_record(
                action="gateway_server.adopted",
                object_type="gateway_service",
                object_id=str(service.pk),
                object_repr=str(service),
                team=wanted.team.slug,
                cluster=cluster.name,
                data={
                    "traffic_type": wanted.traffic_type,
                    "port_name": wanted.port_name,
                    "identical": rendered == server,
                },
            )
            results.append(
                {
                    "key": key,
                    "service": str(service.pk),
                    "team": wanted.team.slug,
                    "name": service.name,
                    "namespace": service.namespace,
                    "gateway": wanted.traffic_type,
                    "port_name": wanted.port_name,
                    "live": server,
                    "rendered": rendered,
                    "identical": rendered == server,
                }
            )
        if errors:
            transaction.set_rollback(True)
            raise DomainError(errors)
        for state in states.values():
            state.save(update_fields=["managed_servers", "adopted_servers"])
        writes = {}
        for traffic_type, state in states.items():
            desired = collect_desired(cluster, traffic_type)
            settings_ = gateway_settings(cluster, traffic_type)
            try:
                facts = read_facts(client, desired.items, settings_, state, verify_all=False)
            except kube.KubeError as exc:
                raise DomainError({"gateway": [f"The cluster could not be read: {exc.message}"]})
            plan = plan_gateway(
                live=lives[traffic_type],
                desired=desired.items,
                settings=settings_,
                facts=facts,
                excluded=desired.preset,
            )
            writes[traffic_type] = {
                "gateway_writes": 0 if plan.gateway is None else 1,
                "secret_writes": sum(1 for op in plan.secret_ops if op.action in ("create", "update", "delete")),
                "servers": plan.servers_diff,
                "rejected": {sid: o.message for sid, o in plan.outcomes.items() if o.state == "rejected"},
            }
        if dry_run:
            transaction.set_rollback(True)
    return {"dry_run": dry_run, "results": results, "writes": writes}


def _live_position(lives: dict[str, dict[str, Any]], wanted: Adoption) -> tuple[str, int]:
    servers = (lives[wanted.traffic_type].get("spec") or {}).get("servers") or []
    names = [((server.get("port") or {}) if isinstance(server, dict) else {}).get("name") for server in servers]
    return wanted.traffic_type, names.index(wanted.port_name) if wanted.port_name in names else len(names)


def operator_resources_import(*, cluster: Cluster, team: Team, user=None, dry_run: bool = False) -> dict[str, Any]:
    """Adopts, for `team`, the server each of the operator's GatewayService resources wrote into the Gateway.

    The resources are read from the cluster (both of the operator's API groups); each one's server is found by the
    port name the operator gave it (`<protocol>-<name>-<namespace>`, the portal's own), and adopted like any live
    server: the Secret it points at stays where it is, as a reference. All or nothing:
    DomainError {"resources": {"namespace/name": errors}}.
    """
    from services.rendering import port_name

    try:
        resources = kube.client_for(cluster).list_operator_services()
    except kube.KubeError as exc:
        raise DomainError({"non_field_errors": [f"The operator's resources could not be read: {exc.message}"]})
    adoptions: dict[str, Adoption] = {}
    errors: dict[str, Any] = {}
    for resource in resources:
        metadata, spec = resource.get("metadata") or {}, resource.get("spec") or {}
        name, namespace = str(metadata.get("name", "")), str(metadata.get("namespace") or "default")
        key = f"{namespace}/{name}"
        traffic_type = str(spec.get("trafficType") or "").lower()
        if traffic_type not in TRAFFIC_TYPES or not spec.get("protocol"):
            errors[key] = {"spec": ["Needs trafficType (ingress or egress) and protocol to find its server."]}
            continue
        wanted = port_name({"protocol": spec["protocol"], "name": name, "namespace": namespace})
        adoptions[key] = Adoption(traffic_type, wanted, team, name, namespace)
    if not adoptions and not errors:
        raise DomainError({"non_field_errors": ["The cluster holds no GatewayService resource of the operator."]})
    if errors:
        raise DomainError({"resources": errors})
    try:
        return gateway_servers_adopt(cluster=cluster, adoptions=adoptions, user=user, dry_run=dry_run)
    except DomainError as exc:
        if set(exc.errors) <= set(adoptions):
            raise DomainError({"resources": exc.errors})
        raise
