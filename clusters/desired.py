"""What should run on one gateway (read from the database) and the cluster facts the planner needs.

Read by the worker (`clusters.converge`) and by the read-only views of a gateway (`clusters.selectors`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from clusters import kube
from clusters.models import Cluster, GatewayState
from clusters.reconcile import DesiredService, Facts, Outcome, reads_needed, wants_material
from services.choices import Approval, State
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus
from services.rendering import GatewaySettings, digest, render_server, secret_name, secret_target_namespace
from services.targeting import allowed, targets
from services.validation.istio import validate_server


@dataclass
class Desired:
    items: list[DesiredService] = field(default_factory=list)
    # Outcomes decided before looking at the cluster (approval gates).
    preset: dict[str, Outcome] = field(default_factory=dict)
    # Outcomes to show instead of "applied" when the block runs (an older approved revision).
    awaiting: dict[str, Outcome] = field(default_factory=dict)


def gateway_settings(cluster: Cluster, traffic_type: str) -> GatewaySettings:
    placeholder = cluster.placeholder_server
    if not isinstance(placeholder, dict) or not placeholder or validate_server(placeholder):
        placeholder = None  # unset or not a server Istio accepts: the default one
    return GatewaySettings(
        namespace_scoped_hosts=cluster.namespace_scoped_hosts,
        secret_namespace=cluster.secret_namespace(traffic_type),
        placeholder=placeholder,
    )


def desired_digest(desired: Desired, settings_: GatewaySettings) -> str:
    """One digest of everything the gateway's managed part and its statuses are computed from."""
    items = [
        [
            item.service_id,
            item.revision,
            item.block_digest or digest(render_server(item.spec, GatewaySettings(namespace_scoped_hosts=False))),
            item.secret_digest,
            ((item.spec.get("tls_options") or {}).get("tls_secret_ref") or {}).get("secret_name", ""),
        ]
        for item in desired.items
    ]
    outcomes = {
        kind: sorted([sid, o.state, o.message, o.revision] for sid, o in found.items())
        for kind, found in (("preset", desired.preset), ("awaiting", desired.awaiting))
    }
    setting = [settings_.namespace_scoped_hosts, settings_.secret_namespace, settings_.placeholder]
    return digest([setting, items, outcomes])


_REVISION_FIELDS = ("id", "number", "spec", "approval", "block_digest", "secret_digest", "created_at")


@dataclasses.dataclass(frozen=True)
class _Revision:
    id: int
    number: int
    spec: dict[str, Any]
    approval: str
    block_digest: str
    secret_digest: str
    created_at: Any
    block_json: str


def collect_desired(cluster: Cluster, traffic_type: str) -> Desired:
    """Every live revision that should run on this gateway, oldest service first (older blocks win clashes).

    One query of plain values: no model instances, no private keys (`load_material` reads those only for the
    secrets about to be written), and each stored block as JSON text, decoded only if the gateway is planned.
    """
    desired = Desired()
    gated = cluster.requires_approval
    kinds = ("current_revision", "approved_revision") if gated else ("current_revision",)
    columns = ["id", "team__slug", "team__allowed_clusters", "team__allowed_cluster_selector", "created_at"]
    annotations = {}
    for kind in kinds:
        columns += [f"{kind}__{name}" for name in _REVISION_FIELDS]
        annotations[f"{kind}_block"] = Cast(f"{kind}__rendered_block", TextField())
    rows = (
        GatewayService.objects.filter(traffic_type=traffic_type, deleting_at__isnull=True)
        .filter(_may_target(cluster, kinds))
        .annotate(**annotations)
        .order_by("created_at", "id")
        .values_list(*columns, *annotations)
    )
    width = len(_REVISION_FIELDS)
    landed: set[str] | None = None  # services with a status here; read only when a team's limits exclude one

    def lands(spec: dict[str, Any], sid: str, names: Any, selector: Any) -> bool:
        nonlocal landed
        if not _targets(spec, cluster):
            return False
        if allowed(cluster.name, cluster.labels, names=names, selector=selector):
            return True
        if landed is None:
            statuses = GatewayServiceStatus.objects.filter(cluster=cluster).values_list("service_id", flat=True)
            landed = {str(service_id) for service_id in statuses}
        return sid in landed

    for row in rows:
        sid, team = str(row[0]), row[1]
        names, selector, service_created = row[2], row[3], row[4]
        revisions = []
        for index in range(len(kinds)):
            values = row[5 + index * width : 5 + (index + 1) * width]
            block = row[5 + len(kinds) * width + index]
            revisions.append(_Revision(*values, block or "") if values[0] is not None else None)
        current = revisions[0]
        runs = revisions[1] if gated else current
        pending = gated and current is not None and current.approval == Approval.PENDING
        waiting = pending and lands(current.spec, sid, names, selector)
        if runs is not None and lands(runs.spec, sid, names, selector):
            desired.items.append(
                DesiredService(
                    sid,
                    team,
                    runs.number,
                    runs.spec,
                    block_json=runs.block_json,
                    block_digest=runs.block_digest,
                    secret_digest=runs.secret_digest,
                    created=service_created.timestamp(),
                    revision_pk=runs.id,
                )
            )
            if pending:
                what = "" if waiting else " (its removal from this cluster)"
                desired.awaiting[sid] = Outcome(
                    State.AWAITING_APPROVAL,
                    f"revision {runs.number} runs here; revision {current.number}{what} awaits approval",
                    runs.number,
                )
        elif waiting:
            desired.preset[sid] = Outcome(
                State.AWAITING_APPROVAL, f"revision {current.number} awaits approval before it runs on this cluster"
            )
        elif gated and current and current.approval == Approval.REJECTED and lands(current.spec, sid, names, selector):
            desired.preset[sid] = Outcome(
                State.REJECTED, f"revision {current.number} was rejected and no approved revision runs on this cluster"
            )
    return desired


def _may_target(cluster: Cluster, kinds: tuple[str, ...]) -> Q:
    """On Postgres, the services whose revision names the cluster or has a selector its labels satisfy (JSON
    containment, evaluated by the database): a gateway reads its own services, not every service of every cluster.
    A superset of what lands (an empty selector passes here); `_targets` decides. Elsewhere (SQLite, the embedded
    demo) every service is read and `_targets` alone decides."""
    if connection.vendor != "postgresql":
        return Q()
    condition = Q()
    for kind in kinds:
        condition |= Q(**{f"{kind}__spec__clusters__contains": [cluster.name]})
        condition |= Q(**{f"{kind}__spec__cluster_selector__contained_by": cluster.labels or {}})
    return condition


def _targets(spec: dict[str, Any], cluster: Cluster) -> bool:
    return targets(spec, cluster_name=cluster.name, labels=cluster.labels, enabled=cluster.enabled)


def load_material(
    items: list[DesiredService], read: set[tuple[str, str]], settings_: GatewaySettings
) -> list[DesiredService]:
    """Load (decrypt) the TLS material of the blocks whose Secrets were `read`, and of any without stored digests."""
    needed = {
        item.revision_pk
        for item in items
        if item.material is None
        and item.revision_pk is not None
        and "tls_secret" in (item.spec.get("tls_options") or {})
        and (wants_material(item) or (secret_target_namespace(item.spec, settings_), secret_name(item.spec)) in read)
    }
    if not needed:
        return items
    materials = dict(GatewayServiceRevision.objects.filter(pk__in=needed).values_list("pk", "tls_material"))
    return [
        dataclasses.replace(item, material=materials.get(item.revision_pk)) if item.revision_pk in needed else item
        for item in items
    ]


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
