"""Writes on gateway services and teams: validated, atomic, audited, then reconciled after commit."""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from audit.actions import audit_record, diff
from clusters.enqueue import request_reconcile
from clusters.models import Cluster
from gatewayportal.exceptions import DomainError, PreconditionFailed
from gatewayportal.locks import advisory_xact_lock
from services import certificates, conflicts, quotas, rendering, specs, validation
from services.choices import Approval, State
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team
from services.rendering import GatewaySettings, block_bytes, render_server
from services.targeting import allowed_for, landing

SPEC_FIELDS = (
    "name",
    "namespace",
    "traffic_type",
    "hosts",
    "port",
    "protocol",
    "mode",
    "tls_options",
    "https_redirect",
    "min_protocol_version",
    "max_protocol_version",
    "clusters",
    "cluster_selector",
    "ticket",
)
IMMUTABLE_FIELDS = ("name", "namespace", "traffic_type")


@dataclass
class Checked:
    """A spec that passed every rule, ready to be stored."""

    spec: dict[str, Any]
    material: dict[str, Any] | None
    certificate: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    target_clusters: list[Cluster] = field(default_factory=list)


def split_input(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Serializer output -> (spec without key material, tls material or None)."""
    spec = {name: copy.deepcopy(data.get(name)) for name in SPEC_FIELDS}
    spec["hosts"] = list(spec["hosts"] or [])
    spec["clusters"] = list(spec["clusters"] or [])
    spec["https_redirect"] = bool(spec["https_redirect"])
    spec["ticket"] = spec["ticket"] or ""
    tls_options = {k: v for k, v in (spec["tls_options"] or {}).items() if v is not None}
    material = None
    if "tls_secret" in tls_options:
        secret = tls_options["tls_secret"]
        material = {"cert": secret.get("cert"), "key": secret.get("key"), "ca_cert": secret.get("ca_cert")}
        tls_options["tls_secret"] = {}
    spec["tls_options"] = tls_options
    return spec, material


def _merge(errors: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(errors.get(key), dict):
            _merge(errors[key], value)
        elif isinstance(value, list) and isinstance(errors.get(key), list):
            errors[key].extend(value)
        else:
            errors[key] = value
    return errors


def check_spec(
    *,
    team: Team,
    spec: dict[str, Any],
    material: dict[str, Any] | None,
    is_platform: bool,
    exclude_service_id: Any = None,
) -> Checked:
    """Every rule a service must pass before it is stored: shape, Istio, tenancy, certificate, conflicts."""
    errors = validation.validate_spec(
        spec, has_tls_material=material is not None, tls_path_prefix=settings.TLS_SECRET_PATH_PREFIX
    )
    _merge(
        errors,
        validation.validate_tenancy(
            spec,
            namespaces=team.namespaces,
            allowed_domains=team.allowed_domains,
            allow_wildcards=team.allow_wildcards,
            is_platform=is_platform,
        ),
    )
    certificate = None
    warnings: list[str] = []
    if material is not None and "tls_options" not in errors:
        check = certificates.check_tls_material(
            cert=material.get("cert") or "",
            key=material.get("key") or "",
            ca_cert=material.get("ca_cert"),
            hosts=spec["hosts"] if "hosts" not in errors else [],
            mode=spec.get("mode"),
            now=timezone.now(),
            warn_days=settings.CERT_EXPIRY_WARNING_DAYS,
        )
        if check.errors:
            _merge(errors, {"tls_options": {"tls_secret": check.errors}})
        else:
            material = check.normalized
            certificate = check.summary
            spec["tls_options"]["tls_secret"] = {"sha256_fingerprint": certificate["sha256_fingerprint"]}
            warnings.extend(check.warnings)

    clusters = list(Cluster.objects.all())
    usable = allowed_for(clusters, names=team.allowed_clusters, selector=team.allowed_cluster_selector)
    _merge(errors, _cluster_errors(team, spec, clusters, usable))
    _merge(errors, _secret_reference_errors(team, spec, is_platform=is_platform))
    if not spec.get("clusters") and not spec.get("cluster_selector"):
        _merge(
            errors, {"non_field_errors": ["Give target clusters: `clusters` (names) or `cluster_selector` (labels)."]}
        )
    if errors:
        raise DomainError(errors)

    # The rendered block must pass Istio's own admission rules (a second line of defence).
    server = render_server(spec, GatewaySettings())
    problems = [i for i in validation.validate_server(server) if i.severity == "error"]
    if problems:
        raise DomainError(
            {"non_field_errors": [f"Istio would refuse the server block: {i.path}: {i.message}" for i in problems]}
        )

    target_clusters = landing(spec, usable)
    _check_quotas(team=team, spec=spec, target_clusters=target_clusters, exclude_service_id=exclude_service_id)
    clashes = _conflicts(
        team=team, spec=spec, clusters=clusters, target_clusters=target_clusters, exclude_service_id=exclude_service_id
    )
    names = _name_clashes(spec, target_clusters, exclude_service_id)
    if clashes or names:
        raise DomainError({key: value for key, value in (("hosts", clashes), ("name", names)) if value})
    return Checked(
        spec=spec, material=material, certificate=certificate, warnings=warnings, target_clusters=target_clusters
    )


def _check_quotas(*, team: Team, spec: dict[str, Any], target_clusters: list[Cluster], exclude_service_id: Any) -> None:
    """The team's quotas and each target Gateway's byte budget, read under the team's row lock and each Gateway's
    budget lock (taken in cluster order), so that concurrent requests cannot both squeeze through.

    A change that adds no hosts, no bytes and no cluster is always allowed, even over a quota lowered since.
    """
    team = Team.objects.select_for_update().get(pk=team.pk)
    errors: dict[str, Any] = {}
    if exclude_service_id is None:
        owned = team.services.filter(deleting_at__isnull=True).count()
        errors = quotas.service_count_errors(team=team.slug, owned=owned, max_services=team.max_services)
    before = (
        GatewayService.objects.filter(pk=exclude_service_id).values_list("current_revision__spec", flat=True).first()
        if exclude_service_id is not None
        else None
    )
    _merge(errors, _gateway_limit_errors(team, spec, before, target_clusters, exclude_service_id))
    if errors:
        raise DomainError(errors)


def _gateway_limit_errors(
    team: Team, spec: dict[str, Any], before: dict[str, Any] | None, clusters: list[Cluster], exclude_service_id: Any
) -> dict[str, Any]:
    """Would `spec` (replacing `before`, if any) take the team or a Gateway of `clusters` past its limits? Read
    under each Gateway's budget lock, taken in cluster order; the caller holds the team's row lock."""
    cost = block_bytes(spec)
    growing = before is None or (
        len(spec["hosts"]) > len(before["hosts"])
        or cost > block_bytes(before)
        or {c.name for c in clusters} - {c.name for c in landing(before, clusters)}
    )
    if not growing or not clusters:
        return {}
    for cluster in sorted(clusters, key=lambda c: c.pk):
        advisory_xact_lock(f"gateway-budget:{cluster.pk}:{spec['traffic_type']}")
    usages = _gateway_usages(team, spec["traffic_type"], clusters, exclude_service_id)
    limits = quotas.Limits(
        max_hosts_per_gateway=team.max_hosts_per_gateway,
        gateway_budget_share=team.gateway_budget_share,
        gateway_byte_budget=settings.GATEWAY_BYTE_BUDGET,
    )
    return quotas.gateway_errors(
        team=team.slug, hosts=len(spec["hosts"]), block_bytes=cost, usages=usages, limits=limits
    )


def _gateway_usages(
    team: Team, traffic_type: str, target_clusters: list[Cluster], exclude_service_id: Any
) -> list[quotas.GatewayUsage]:
    """What stands on each target Gateway. The Gateway's total counts what runs or is approved to run there; the
    team's own use also counts its revisions awaiting approval (the larger of the two)."""
    rows = (
        GatewayService.objects.filter(traffic_type=traffic_type, deleting_at__isnull=True)
        .exclude(pk=exclude_service_id)
        .values_list("team_id", "current_revision__spec", "approved_revision__spec")
    )
    usage = {c.pk: [0, 0, 0] for c in target_clusters}  # team hosts, team bytes, total bytes
    for team_id, current, approved in rows:
        costs = {id(s): block_bytes(s) for s in (current, approved) if s is not None}
        for cluster in target_clusters:
            runs = approved if cluster.requires_approval else current
            if runs is not None and landing(runs, [cluster]):
                usage[cluster.pk][2] += costs[id(runs)]
            if team_id != team.pk:
                continue
            mine = [s for s in {id(s): s for s in (current, runs) if s is not None}.values() if landing(s, [cluster])]
            if mine:
                usage[cluster.pk][0] += max(len(s["hosts"]) for s in mine)
                usage[cluster.pk][1] += max(costs[id(s)] for s in mine)
    return [quotas.GatewayUsage(cluster.name, traffic_type, *usage[cluster.pk]) for cluster in target_clusters]


def _cluster_errors(team: Team, spec: dict[str, Any], clusters: list[Cluster], usable: list[Cluster]) -> dict:
    """Named clusters must exist and be allowed for the team (a selector lands only on allowed ones)."""
    known = {c.name for c in clusters}
    allowed = [c.name for c in usable]
    named = spec.get("clusters") or []
    unknown = [name for name in named if name not in known]
    if unknown:
        return {
            "clusters": [
                f"Unknown cluster(s): {', '.join(unknown)}. Clusters this team may use: {', '.join(allowed) or 'none'}."
            ]
        }
    refused = [name for name in named if name not in allowed]
    if refused:
        return {
            "clusters": [
                f"Team {team.slug} may not use cluster(s): {', '.join(refused)}. Clusters it may use: "
                f"{', '.join(allowed) or 'none'}; the platform team sets them (allowed_clusters, "
                "allowed_cluster_selector)."
            ]
        }
    return {}


def _secret_reference_errors(team: Team, spec: dict[str, Any], *, is_platform: bool) -> dict:
    """A tls_secret_ref names a Secret granted to the team, never one the portal writes for any service."""
    ref = (spec.get("tls_options") or {}).get("tls_secret_ref")
    name = ref.get("secret_name") if isinstance(ref, dict) else None
    if not isinstance(name, str):
        return {}
    managed = (
        GatewayService.objects.annotate(secret=Concat("name", Value("-"), "namespace", Value("-secret")))
        .filter(secret=name)
        .exists()
    )
    granted = [name] if is_platform else list(team.granted_secrets or [])
    return validation.secret_reference_errors(name, granted=granted, managed=managed)


def _conflicts(
    *,
    team: Team,
    spec: dict[str, Any],
    clusters: list[Cluster],
    target_clusters: list[Cluster],
    exclude_service_id: Any,
) -> list[str]:
    if not target_clusters:
        return []
    candidate = conflicts.Claim(
        service_id=str(exclude_service_id or ""),
        team=team.slug,
        name=spec["name"],
        namespace=spec["namespace"],
        traffic_type=spec["traffic_type"],
        clusters=frozenset(c.name for c in target_clusters),
        port=spec["port"],
        protocol=spec["protocol"],
        hosts=tuple(spec["hosts"]),
        tls=bool(spec.get("mode")),
    )
    return list(dict.fromkeys(conflicts.find_conflicts(candidate, claims_on_port(spec, clusters, exclude_service_id))))


def claims_on_port(spec: dict[str, Any], clusters: list[Cluster], exclude_service_id: Any) -> list[conflicts.Claim]:
    """What holds a claim that may clash with `spec`: on each cluster, only the revision that runs or is approved
    to run there — the current one on an ungated cluster, the approved one on a gated cluster — and not where the
    planner refused it. Pending and rejected revisions hold nothing, so they block no other team."""
    gated = [c for c in clusters if c.requires_approval]
    ungated = [c for c in clusters if not c.requires_approval]
    # Plain rows, not model instances: this reads every service on the port (thousands on a busy gateway), and
    # building the services and both revisions (encrypted TLS material included) was most of a create's time.
    rows = list(
        GatewayService.objects.filter(traffic_type=spec["traffic_type"], deleting_at__isnull=True)
        .filter(conflict_candidates(spec))
        .exclude(pk=exclude_service_id)
        .order_by()
        .values_list(
            "pk",
            "team__slug",
            "name",
            "namespace",
            "traffic_type",
            "current_revision__number",
            "current_revision__spec",
            "approved_revision__number",
            "approved_revision__spec",
        )
    )
    refused = set(
        GatewayServiceStatus.objects.filter(service_id__in=[row[0] for row in rows], state=State.REJECTED)
        .exclude(revision=None)
        .values_list("service_id", "cluster__name", "revision")
    )
    claims = []
    for pk, team_slug, name, namespace, traffic_type, current, current_spec, approved, approved_spec in rows:
        for number, other_spec, where in ((current, current_spec, ungated), (approved, approved_spec, gated)):
            if other_spec is None or other_spec["port"] != spec["port"]:
                continue
            held = frozenset(c.name for c in landing(other_spec, where) if (pk, c.name, number) not in refused)
            if held:
                claims.append(
                    conflicts.Claim(
                        service_id=str(pk),
                        team=team_slug,
                        name=name,
                        namespace=namespace,
                        traffic_type=traffic_type,
                        clusters=held,
                        port=other_spec["port"],
                        protocol=other_spec["protocol"],
                        hosts=tuple(other_spec["hosts"]),
                        tls=bool(other_spec.get("mode")),
                    )
                )
    return claims


EVERY_SERVICE = Q(pk__isnull=False)  # an empty Q() would vanish from an OR instead of matching everything


def conflict_candidates(spec: dict[str, Any]) -> Q:
    """Services that could clash with `spec` on its port: a superset the pure rules then decide on.

    Narrowed with the columns copied from the current revision, so a create on a gateway port carrying
    thousands of services reads only those whose protocol cannot share the port or whose hosts may overlap.
    A service whose approved revision differs from its current one is always read (there are few); its
    approved revision's port is checked in Python, so the filter never joins the revisions of every row.

    The host test runs here in Python over the port's `hosts_index` column (one small read), not as one SQL
    condition per host and label: that grew with hosts x labels and broke SQLite's expression limit. It is the one
    overlap rule, `validation.hosts_overlap`, found through a `validation.HostIndex` of the spec's hosts.
    """
    port = spec["port"]
    tls = bool(spec.get("mode"))
    incompatible = Q(mode="") if tls else ~Q(mode="") | ~Q(protocol__in=validation.PORTAL_HTTP_FAMILY)
    if not tls and spec["protocol"] not in validation.PORTAL_HTTP_FAMILY:
        incompatible = EVERY_SERVICE
    # Read whatever their port: the approved revision's port is checked in Python by the caller.
    pending = Q(approved_revision__isnull=False) & ~Q(approved_revision=F("current_revision"))
    ours = validation.HostIndex(spec["hosts"])
    if ours.overlaps_every_host or incompatible is EVERY_SERVICE:
        return Q(port=port) | pending
    rows = GatewayService.objects.filter(port=port).exclude(incompatible).values_list("pk", "hosts_index")
    overlapping = [pk for pk, stored in rows.iterator() if any(map(ours.overlaps, stored.strip("|").split("|")))]
    return (Q(port=port) & (incompatible | Q(pk__in=overlapping))) | pending


def _name_clashes(spec: dict[str, Any], target_clusters: list[Cluster], exclude_service_id: Any) -> list[str]:
    """Port and Secret names join name and namespace with '-': `a-b` in `c` and `a` in `b-c` would collide."""
    joined = f"{spec['name']}-{spec['namespace']}"
    # Every (name, namespace) split of `joined` at a '-': exact lookups on the unique (namespace, name) index.
    splits = Q(pk__isnull=True)
    for i, char in enumerate(joined):
        if char == "-":
            splits |= Q(name=joined[:i], namespace=joined[i + 1 :])
    same = (
        GatewayService.objects.filter(splits, deleting_at__isnull=True)
        .exclude(pk=exclude_service_id)
        .order_by()
        .select_related("team", "current_revision")
    )
    messages = []
    for other in same:
        if landing(other.current_revision.spec, target_clusters):
            messages.append(
                f"'{spec['name']}' in namespace '{spec['namespace']}' would share the gateway port and TLS secret "
                f"names '*-{joined}' with {other.team.slug}/{other.name} on a common cluster; choose another name."
            )
    return messages


def _approval_for(service: GatewayService, target_clusters: list[Cluster]) -> str:
    """Pending when the revision lands on a gated cluster, or leaves one where the approved revision lands: leaving
    a gated cluster is a change like any other there."""
    if any(c.requires_approval for c in target_clusters):
        return Approval.PENDING
    return Approval.PENDING if _gated_running(service, exclude=target_clusters) else Approval.NOT_REQUIRED


def _gated_running(service: GatewayService, exclude: list[Cluster] = ()) -> list[Cluster]:
    """The gated clusters (other than `exclude`) where the service's approved revision runs or waits to run."""
    approved = service.approved_revision
    if approved is None:
        return []
    gated = Cluster.objects.filter(requires_approval=True).exclude(pk__in=[c.pk for c in exclude])
    return landing(approved.spec, gated)


def is_removal(spec: dict[str, Any]) -> bool:
    """A removal revision targets no cluster: the DELETE of a service that runs on a gated cluster records one,
    and the block stays there until it is approved (every write through check_spec names a target)."""
    return not spec.get("clusters") and not spec.get("cluster_selector")


def _service_lock(spec: dict[str, Any]) -> None:
    # Serializes writers that could claim the same gateway port, so conflict checks cannot race.
    advisory_xact_lock(f"gateway-port:{spec['traffic_type']}:{spec['port']}")


def _audit_service(service: GatewayService, *, action: str, **fields: Any) -> None:
    """An audit event about one gateway service, in the caller's transaction."""
    audit_record(
        action=action,
        object_type="gateway_service",
        object_id=str(service.pk),
        object_repr=str(service),
        team=service.team.slug,
        **fields,
    )


def _actor_name(user) -> str:
    return getattr(user, "username", "") or "system"


def gateway_service_create(
    *, team: Team, data: dict[str, Any], user=None, is_platform: bool = False, apply_set: str = ""
) -> tuple[GatewayService, list[str]]:
    spec, material = split_input(data)
    with transaction.atomic():
        _service_lock(spec)
        # Only in the team's own namespaces: elsewhere the tenancy check (in check_spec) answers first, so a caller
        # cannot learn which names exist in namespaces that are not theirs.
        in_own_namespace = spec["namespace"] in team.namespaces
        if in_own_namespace and GatewayService.objects.filter(namespace=spec["namespace"], name=spec["name"]).exists():
            raise DomainError(
                {
                    "name": [
                        f"A gateway service named '{spec['name']}' already exists in namespace "
                        f"'{spec['namespace']}'. Names are unique per namespace."
                    ]
                }
            )
        checked = check_spec(team=team, spec=spec, material=material, is_platform=is_platform)
        service = GatewayService.objects.create(
            name=spec["name"],
            team=team,
            namespace=spec["namespace"],
            traffic_type=spec["traffic_type"],
            created_by=_actor_name(user),
            apply_set=apply_set,
        )
        revision = _add_revision(service=service, checked=checked, user=user)
        _audit_service(
            service,
            action="gateway_service.created",
            ticket=spec["ticket"],
            changes={k: [None, v] for k, v in spec.items()},
            data={"revision": revision.number, "approval": revision.approval}
            | ({"apply_set": apply_set} if apply_set else {}),
        )
        _refresh_statuses(service=service, target_clusters=checked.target_clusters)
    return service, checked.warnings


def gateway_service_update(
    *,
    service: GatewayService,
    data: dict[str, Any],
    user=None,
    is_platform: bool = False,
    partial: bool = False,
    expected_revisions: Collection[int] | None = None,
) -> tuple[GatewayService, list[str]]:
    """A new revision from a PUT (`partial=False`) or a PATCH, merged onto the latest revision under the row lock.

    `expected_revisions` (from `If-Match`) are the revision numbers the caller last read; when the service has
    moved on since, nothing changes and `PreconditionFailed` is raised. A revision names a ticket only when the
    request does: the ticket of the revision before is not carried over.
    """
    given, given_material = split_input(data)
    refusal = None
    with transaction.atomic():
        # The lock comes first: the revision a change is merged onto, compared with and diffed against is the
        # latest one, never one a concurrent writer has replaced meanwhile.
        service = GatewayService.objects.select_for_update().get(pk=service.pk)
        current = service.current_revision
        check_expected_revision(current, expected_revisions)
        if service.deleting_at:
            raise DomainError({"non_field_errors": ["This gateway service is being deleted."]})
        spec, material = given, given_material
        if partial:
            spec = copy.deepcopy(current.spec)
            spec.update({k: v for k, v in given.items() if k in data})
            spec["ticket"] = given["ticket"]
            if "tls_options" not in data:
                material = current.tls_material if "tls_secret" in spec.get("tls_options", {}) else None
        changed_identity = [f for f in IMMUTABLE_FIELDS if f in data and spec[f] != current.spec[f]]
        if changed_identity:
            raise DomainError(
                {f: [f"'{f}' cannot be changed; create a new gateway service instead."] for f in changed_identity}
            )
        _service_lock(spec)
        checked = check_spec(
            team=service.team, spec=spec, material=material, is_platform=is_platform, exclude_service_id=service.pk
        )
        same_material = (checked.material or None) == (current.tls_material or None)
        if _unchanged(current.spec, checked.spec) and same_material:
            return service, checked.warnings
        refusal = _ticket_in_use(service, checked.spec["ticket"])
        if refusal is None:
            revision = _add_revision(service=service, checked=checked, user=user)
            changes = diff(current.spec, checked.spec)
            if not same_material:
                changes["tls_material"] = ["[redacted]", "[redacted]"]
            _audit_service(
                service,
                action="gateway_service.updated",
                ticket=checked.spec["ticket"],
                changes=changes,
                data={"revision": revision.number, "approval": revision.approval},
            )
            _refresh_statuses(service=service, target_clusters=checked.target_clusters)
            return service, checked.warnings
    # Refused outside the rolled-back work, so the refusal itself stays on record.
    with transaction.atomic():
        _audit_service(
            service,
            action="gateway_service.update_refused",
            ticket=checked.spec["ticket"],
            data={"reason": "ticket_in_use", "pending_revision": refusal.number},
        )
    raise DomainError(
        {
            "ticket": [
                f"Revision {refusal.number} of this service already waits for approval under ticket "
                f"'{refusal.ticket}'; a ticket approves one revision of a service. Name another ticket, or wait "
                "until that revision is decided."
            ]
        }
    )


def check_expected_revision(current: GatewayServiceRevision | None, expected: Collection[int] | None) -> None:
    """`If-Match`: the write goes ahead only on the revision the caller read (None: no precondition)."""
    if expected is None or (current is not None and current.number in expected):
        return
    now = current.number if current is not None else "none"
    raise PreconditionFailed(
        {
            "detail": [
                f"The service is at revision {now}; If-Match names another revision. "
                "Read it again (its ETag is the revision) and retry on that."
            ]
        }
    )


def _unchanged(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """No new revision when only the ticket differs by being left out: that would only drop the link."""
    if after["ticket"] in ("", before.get("ticket") or ""):
        return {**after, "ticket": before.get("ticket") or ""} == before
    return False


def _ticket_in_use(service: GatewayService, ticket: str) -> GatewayServiceRevision | None:
    """The pending revision of this service that already names `ticket`, if any (one per ticket)."""
    if not ticket:
        return None
    return service.revisions.filter(ticket=ticket, approval=Approval.PENDING).order_by("-number").first()


def _add_revision(
    *, service: GatewayService, checked: Checked, user, author: str | None = None
) -> GatewayServiceRevision:
    number = (service.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    approval = _approval_for(service, checked.target_clusters)
    revision = GatewayServiceRevision(
        service=service,
        number=number,
        spec=checked.spec,
        tls_material=checked.material,
        certificate=checked.certificate,
        approval=approval,
        author=author or _actor_name(user),
        ticket=checked.spec.get("ticket") or "",
    )
    render_revision(revision)
    revision.save()
    service.current_revision = revision
    service.port = checked.spec["port"]
    service.protocol = checked.spec["protocol"]
    service.mode = checked.spec.get("mode") or ""
    service.hosts_index = "|" + "|".join(h.lower() for h in checked.spec["hosts"]) + "|"
    fields = ["current_revision", "port", "protocol", "mode", "hosts_index", "updated_at"]
    if approval == Approval.NOT_REQUIRED:
        service.approved_revision = revision
        fields.append("approved_revision")
    service.save(update_fields=fields)
    return revision


def render_revision(revision: GatewayServiceRevision) -> None:
    """Store the revision's rendered block and digests on it (render once: the worker compares digests)."""
    rendered = rendering.render_revision(
        revision.spec, revision.tls_material, service_id=str(revision.service_id), team=revision.service.team.slug
    )
    revision.rendered_block = rendered.block
    revision.block_digest = rendered.block_digest
    revision.secret_digest = rendered.secret_digest


def _refresh_statuses(*, service: GatewayService, target_clusters: list[Cluster]) -> None:
    """Mark where the service should now be, and ask those gateways (and ones it left) to converge."""
    current = service.current_revision
    targeted = {c.pk: c for c in target_clusters}
    approved = service.approved_revision
    for cluster in target_clusters:
        if cluster.requires_approval and current.approval == Approval.PENDING:
            running = f"; revision {approved.number} keeps running" if approved else ""
            state, message = State.AWAITING_APPROVAL, f"Revision {current.number} awaits approval{running}."
        elif cluster.requires_approval and current.approval == Approval.REJECTED:
            running = f"; revision {approved.number} keeps running" if approved else ""
            state, message = State.PENDING, f"Revision {current.number} was rejected{running}."
        else:
            state, message = State.PENDING, ""
        GatewayServiceStatus.objects.update_or_create(
            service=service,
            cluster=cluster,
            defaults={"traffic_type": service.traffic_type, "state": state, "message": message},
        )
    left = list(service.statuses.exclude(cluster_id__in=targeted).select_related("cluster"))
    kept = {c.pk for c in _gated_running(service)} if current.approval == Approval.PENDING else set()
    for status in left:
        if status.cluster_id in kept:
            status.state = State.AWAITING_APPROVAL
            status.message = f"Removal from this cluster awaits approval; revision {approved.number} keeps running."
        else:
            status.state, status.message = State.REMOVING, "No longer targeted; removing."
        status.save(update_fields=["state", "message", "updated_at"])
    cluster_ids = set(targeted) | {s.cluster_id for s in left}
    if cluster_ids:
        request_reconcile(cluster_ids=cluster_ids, traffic_type=service.traffic_type)


def gateway_service_delete(*, service: GatewayService, expected_revisions: Collection[int] | None = None) -> None:
    with transaction.atomic():
        service = GatewayService.objects.select_for_update().select_related("team").get(pk=service.pk)
        check_expected_revision(service.current_revision, expected_revisions)
        if service.deleting_at:
            return
        current = service.current_revision
        if current is not None and is_removal(current.spec) and current.approval == Approval.PENDING:
            return  # its removal already awaits approval
        if current is not None and _gated_running(service):
            _request_removal(service)
            return
        _start_removal(service)


def _request_removal(service: GatewayService) -> None:
    """Deleting a service that runs on a gated cluster: a removal revision (no targets) awaits approval there; the
    ungated clusters drop the block at once, the gated ones keep the approved revision until it is approved."""
    current = service.current_revision
    spec = {**copy.deepcopy(current.spec), "clusters": [], "cluster_selector": None, "ticket": ""}
    checked = Checked(spec=spec, material=None, certificate=None)
    from gatewayportal.context import current_actor

    revision = _add_revision(service=service, checked=checked, user=None, author=current_actor().name)
    _audit_service(
        service,
        action="gateway_service.deleted",
        changes=diff(current.spec, spec),
        data={"revision": revision.number, "approval": revision.approval},
    )
    _refresh_statuses(service=service, target_clusters=[])


def _start_removal(service: GatewayService, *, audit: bool = True) -> None:
    """The block and any secret the portal created leave every cluster; the service goes when they are gone."""
    if audit:
        _audit_service(
            service,
            action="gateway_service.deleted",
            ticket=service.current_revision.ticket if service.current_revision else None,
            changes={
                k: [v, None] for k, v in (service.current_revision.spec if service.current_revision else {}).items()
            },
        )
    cluster_ids = list(service.statuses.values_list("cluster_id", flat=True))
    if not cluster_ids:
        service.delete()
        return
    service.deleting_at = timezone.now()
    service.save(update_fields=["deleting_at", "updated_at"])
    service.statuses.update(state=State.REMOVING, message="Removal in progress.", updated_at=timezone.now())
    request_reconcile(cluster_ids=cluster_ids, traffic_type=service.traffic_type)


def gateway_service_set_apply_set(*, service: GatewayService, apply_set: str) -> bool:
    """Records which apply set last applied the service (what prune may remove); False when it already was."""
    with transaction.atomic():
        service = GatewayService.objects.select_for_update().select_related("team").get(pk=service.pk)
        if service.apply_set == apply_set:
            return False
        _audit_service(
            service,
            action="gateway_service.apply_set_changed",
            changes={"apply_set": [service.apply_set or None, apply_set or None]},
        )
        service.apply_set = apply_set
        service.save(update_fields=["apply_set", "updated_at"])
    return True


def revision_approve(*, revision: GatewayServiceRevision, comment: str = "") -> GatewayServiceRevision:
    return _decide(revision=revision, approval=Approval.APPROVED, comment=comment)


def revision_reject(*, revision: GatewayServiceRevision, comment: str = "") -> GatewayServiceRevision:
    return _decide(revision=revision, approval=Approval.REJECTED, comment=comment)


def _decide(*, revision: GatewayServiceRevision, approval: str, comment: str) -> GatewayServiceRevision:
    from gatewayportal.context import current_actor

    with transaction.atomic():
        if approval == Approval.APPROVED:
            _service_lock(revision.spec)  # before the row lock, in the order writers take them
        service = GatewayService.objects.select_for_update().select_related("team").get(pk=revision.service_id)
        revision = GatewayServiceRevision.objects.get(pk=revision.pk)
        if revision.approval != Approval.PENDING:
            raise DomainError(
                {
                    "non_field_errors": [
                        f"Revision {revision.number} is {revision.approval}; only pending revisions can be decided."
                    ]
                }
            )
        if approval == Approval.APPROVED:
            _check_approval_clashes(service, revision)
        revision.approval = approval
        revision.decided_by = current_actor().name
        revision.decided_at = timezone.now()
        revision.decision_comment = comment
        revision.save(update_fields=["approval", "decided_by", "decided_at", "decision_comment"])
        if approval == Approval.APPROVED and (
            service.approved_revision is None or service.approved_revision.number < revision.number
        ):
            service.approved_revision = revision
            service.save(update_fields=["approved_revision", "updated_at"])
        _audit_service(
            service,
            action=f"gateway_service.{approval}",
            ticket=revision.ticket,
            changes={"approval": [Approval.PENDING, approval]},
            data={"revision": revision.number, "comment": comment},
        )
        if approval == Approval.APPROVED and is_removal(revision.spec) and service.current_revision_id == revision.pk:
            _start_removal(service, audit=False)
        else:
            target_clusters = landing(service.current_revision.spec, Cluster.objects.all())
            _refresh_statuses(service=service, target_clusters=target_clusters)
    return revision


def _check_approval_clashes(service: GatewayService, revision: GatewayServiceRevision) -> None:
    """Pending revisions hold no claim, so two may clash: the one approved second is refused on the gated
    clusters where the first now holds the port or host (the ungated ones already run it)."""
    clusters = list(Cluster.objects.all())
    gated = [c for c in landing(revision.spec, clusters) if c.requires_approval]
    clashes = _conflicts(
        team=service.team, spec=revision.spec, clusters=clusters, target_clusters=gated, exclude_service_id=service.pk
    )
    # Approved, it counts in the Gateway's byte budget (pending, it counted only in its team's share).
    team = Team.objects.select_for_update().get(pk=service.team_id)
    approved = service.approved_revision.spec if service.approved_revision else None
    over = _gateway_limit_errors(team, revision.spec, approved, gated, service.pk).get("hosts", [])
    if clashes or over:
        raise DomainError(
            {"non_field_errors": [f"Revision {revision.number} cannot be approved: {m}" for m in clashes + over]}
        )


def team_save(*, data: dict[str, Any], team: Team | None = None) -> Team:
    members = data.pop("members", None)
    with transaction.atomic():
        before = _team_state(team) if team else {}
        if team is None:
            team = Team.objects.create(**data)
            action = "team.created"
        else:
            for key, value in data.items():
                setattr(team, key, value)
            team.save()
            action = "team.updated"
        if members is not None:
            team.members.set(members)
        changes = diff(before, _team_state(team))
        if action == "team.updated" and not changes:
            return team
        _audit_team(team, action, changes)
    return team


def team_delete(*, team: Team) -> None:
    with transaction.atomic():
        if team.services.exists():
            raise DomainError({"non_field_errors": ["This team still owns gateway services; delete them first."]})
        if team.ticketing_sources.exists():
            raise DomainError(
                {"non_field_errors": ["Ticketing sources are bound to this team; delete or rebind them first."]}
            )
        _audit_team(team, "team.deleted", diff(_team_state(team), {}))
        team.delete()


def _audit_team(team: Team, action: str, changes: dict[str, Any]) -> None:
    # The IdP's membership sync (services.identity.sync) records its own team events: as the synced user, with the
    # groups that decided them as evidence.
    audit_record(
        action=action,
        object_type="team",
        object_id=team.slug,
        object_repr=team.name,
        team=team.slug,
        changes=changes,
    )


def _team_state(team: Team) -> dict[str, Any]:
    return {
        "slug": team.slug,
        "name": team.name,
        "namespaces": team.namespaces,
        "allowed_domains": team.allowed_domains,
        "allow_wildcards": team.allow_wildcards,
        "allowed_clusters": team.allowed_clusters,
        "allowed_cluster_selector": team.allowed_cluster_selector,
        "max_services": team.max_services,
        "max_hosts_per_gateway": team.max_hosts_per_gateway,
        "gateway_budget_share": team.gateway_budget_share,
        "granted_secrets": team.granted_secrets,
        "members": sorted(team.members.values_list("username", flat=True)),
        "idp_groups": team.idp_groups,
        "trusted_identities": team.trusted_identities,
    }


def gateway_service_create_from_payload(
    *, payload: Any, team: Team, is_platform: bool = False, user=None
) -> tuple[GatewayService, list[str]]:
    """Files a request from an API-shaped payload (ticket webhook, YAML import), checked exactly like the API's."""
    data = specs.parse(payload)
    given_team = data.pop("team", None)
    if given_team and given_team != team.slug:
        raise DomainError({"team": [f"Requests from this source are filed for team '{team.slug}' only."]})
    with transaction.atomic():
        return gateway_service_create(team=team, data=data, user=user, is_platform=is_platform)


def remove_finished_services(service_ids: list[str]) -> None:
    """A service being deleted disappears once no cluster holds its block any more (its audit stays)."""
    finished = GatewayService.objects.filter(id__in=service_ids, deleting_at__isnull=False, statuses__isnull=True)
    for service in finished.select_related("team"):
        _audit_service(
            service,
            action="gateway_service.removed",
            data={"message": "removed from every cluster"},
        )
        service.delete()
