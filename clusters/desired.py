"""What should run on one gateway (read from the database) and the cluster facts the planner needs.

Read by the worker (`clusters.converge`) and by the read-only views of a gateway (`clusters.selectors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clusters import kube
from clusters.models import Cluster, GatewayState
from clusters.reconcile import DesiredService, Facts, Outcome, reads_needed
from services.choices import Approval, State
from services.models import GatewayService
from services.rendering import GatewaySettings
from services.targeting import targets


@dataclass
class Desired:
    items: list[DesiredService] = field(default_factory=list)
    # Outcomes decided before looking at the cluster (approval gates).
    preset: dict[str, Outcome] = field(default_factory=dict)
    # Outcomes to show instead of "applied" when the block runs (an older approved revision).
    awaiting: dict[str, Outcome] = field(default_factory=dict)


def gateway_settings(cluster: Cluster, traffic_type: str) -> GatewaySettings:
    return GatewaySettings(
        namespace_scoped_hosts=cluster.namespace_scoped_hosts, secret_namespace=cluster.secret_namespace(traffic_type)
    )


def collect_desired(cluster: Cluster, traffic_type: str) -> Desired:
    """Every live revision that should run on this gateway, oldest service first (older blocks win clashes)."""
    desired = Desired()
    services = (
        GatewayService.objects.filter(traffic_type=traffic_type, deleting_at__isnull=True)
        .select_related("team", "current_revision", "approved_revision")
        .order_by("created_at", "id")
    )
    for service in services:
        sid = str(service.id)
        current, approved = service.current_revision, service.approved_revision
        runs = approved if cluster.requires_approval else current
        waiting = (
            cluster.requires_approval
            and current is not None
            and current.approval == Approval.PENDING
            and _targets(current.spec, cluster)
        )
        if runs is not None and _targets(runs.spec, cluster):
            desired.items.append(DesiredService(sid, service.team.slug, runs.number, runs.spec, runs.tls_material))
            if waiting:
                desired.awaiting[sid] = Outcome(
                    State.AWAITING_APPROVAL,
                    f"revision {runs.number} runs here; revision {current.number} awaits approval",
                    runs.number,
                )
        elif waiting:
            desired.preset[sid] = Outcome(
                State.AWAITING_APPROVAL, f"revision {current.number} awaits approval before it runs on this cluster"
            )
        elif (
            cluster.requires_approval
            and current
            and current.approval == Approval.REJECTED
            and _targets(current.spec, cluster)
        ):
            desired.preset[sid] = Outcome(
                State.REJECTED, f"revision {current.number} was rejected and no approved revision runs on this cluster"
            )
    return desired


def _targets(spec: dict[str, Any], cluster: Cluster) -> bool:
    return targets(spec, cluster_name=cluster.name, labels=cluster.labels, enabled=cluster.enabled)


def read_facts(
    client: kube.KubeClient,
    items: list[DesiredService],
    settings_: GatewaySettings,
    state: GatewayState,
    *,
    verify_all: bool,
) -> Facts:
    secret_keys, namespaces = reads_needed(items, settings_, state.secrets, verify_all=verify_all)
    return Facts(
        secrets={key: client.get_secret(*key) for key in secret_keys},
        namespaces={ns: client.namespace_exists(ns) for ns in namespaces},
        recorded_secrets=dict(state.secrets),
        recorded_servers=frozenset(state.managed_servers),
        recorded_digest=state.managed_digest,
        adopted_servers=frozenset(state.adopted_servers),
    )
