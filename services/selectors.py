"""Reads: what a user may see, and the public view of a gateway service."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from clusters.models import Cluster
from gatewayportal.roles import is_platform
from services.choices import Approval
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team
from services.rendering import GatewaySettings, credential_name, render_server
from services.targeting import landing


def teams_for_user(user) -> QuerySet[Team]:
    if is_platform(user):
        return Team.objects.all()
    return Team.objects.filter(members=user)


def gateway_services_for_user(user) -> QuerySet[GatewayService]:
    # The current revision is prefetched, not joined: a page then joins revisions for its own rows only,
    # instead of every service of the team before sorting and slicing.
    qs = GatewayService.objects.select_related("team").prefetch_related(
        "current_revision",
        Prefetch("statuses", queryset=GatewayServiceStatus.objects.select_related("cluster")),
    )
    if is_platform(user):
        return qs
    return qs.filter(team__members=user)


def pending_revisions_for_ticket(*, ticket: str, team: Team | None = None) -> QuerySet[GatewayServiceRevision]:
    qs = GatewayServiceRevision.objects.filter(ticket=ticket, approval=Approval.PENDING).select_related(
        "service", "service__team"
    )
    if team is not None:
        qs = qs.filter(service__team=team)
    return qs


def clusters_by_name() -> dict[str, Cluster]:
    return {c.name: c for c in Cluster.objects.all()}


def gateway_settings_for(spec: dict[str, Any], clusters: dict[str, Cluster]) -> GatewaySettings:
    """Hosts are namespace-scoped unless every target cluster says otherwise."""
    landed = landing(spec, clusters.values())
    scoped = not landed or any(c.namespace_scoped_hosts for c in landed)
    return GatewaySettings(namespace_scoped_hosts=scoped)


def public_tls_options(spec: dict[str, Any], material: dict[str, Any] | None) -> dict[str, Any] | None:
    tls_options = dict(spec.get("tls_options") or {})
    if "tls_secret" in tls_options:
        material = material or {}
        tls_options["tls_secret"] = {"cert": material.get("cert"), "ca_cert": material.get("ca_cert")}
    return tls_options or None


def spec_view(spec: dict[str, Any], clusters: dict[str, Cluster]) -> dict[str, Any]:
    return {
        "server_block": render_server(spec, gateway_settings_for(spec, clusters)),
        "credential_name": credential_name(spec),
    }


def gateway_service_view(service: GatewayService, context: dict[str, Any] | None = None) -> dict[str, Any]:
    context = context if context is not None else {}
    clusters = context.get("clusters_by_name")
    if clusters is None:
        clusters = context["clusters_by_name"] = clusters_by_name()
    revision = service.current_revision
    spec = revision.spec
    return {
        "id": str(service.pk),
        "name": service.name,
        "team": service.team.slug,
        "namespace": service.namespace,
        "hosts": spec["hosts"],
        "port": spec["port"],
        "protocol": spec["protocol"],
        "mode": spec.get("mode"),
        "traffic_type": service.traffic_type,
        "tls_options": public_tls_options(spec, revision.tls_material),
        "https_redirect": spec.get("https_redirect", False),
        "min_protocol_version": spec.get("min_protocol_version"),
        "max_protocol_version": spec.get("max_protocol_version"),
        "clusters": spec.get("clusters") or [],
        "cluster_selector": spec.get("cluster_selector"),
        "ticket": spec.get("ticket") or "",
        "revision": revision.number,
        "approval": revision.approval,
        "approval_reference": revision.approval_reference,
        **spec_view(spec, clusters),
        "certificate": revision.certificate,
        "status": [
            {
                "cluster": s.cluster.name,
                "traffic_type": s.traffic_type,
                "state": s.state,
                "revision": s.revision,
                "message": s.message,
                "updated_at": _iso(s.updated_at),
            }
            for s in service.statuses.all()
        ],
        "created_at": _iso(service.created_at),
        "updated_at": _iso(service.updated_at),
        "created_by": service.created_by,
    }


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def approval_diff(service: GatewayService) -> list[dict[str, Any]]:
    """What approving the current revision would change on each gated cluster it targets (live diff, no writes)."""
    from clusters.selectors import live_diff

    revision = service.current_revision
    if revision is None or revision.approval != Approval.PENDING:
        return []
    spec = revision.spec
    gated = landing(spec, Cluster.objects.filter(requires_approval=True))
    return [
        live_diff(
            cluster=cluster,
            traffic_type=service.traffic_type,
            server=render_server(spec, gateway_settings_for(spec, {cluster.name: cluster})),
            service_id=str(service.pk),
        )
        for cluster in gated
    ]
