"""Writes on gateway services and teams: validated, atomic, audited, then reconciled after commit."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from audit.actions import audit_record, diff
from clusters.models import Cluster
from gatewayportal.exceptions import DomainError
from gatewayportal.locks import advisory_xact_lock
from services import certificates, conflicts, specs, validation
from services.choices import Approval, State
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team
from services.rendering import GatewaySettings, render_server
from services.targeting import landing

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
    known = {c.name for c in clusters}
    unknown = [name for name in spec.get("clusters") or [] if name not in known]
    if unknown:
        _merge(
            errors,
            {
                "clusters": [
                    f"Unknown cluster(s): {', '.join(unknown)}. Known clusters: {', '.join(sorted(known)) or 'none'}."
                ]
            },
        )
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

    target_clusters = landing(spec, clusters)
    clashes = _conflicts(
        team=team, spec=spec, clusters=clusters, target_clusters=target_clusters, exclude_service_id=exclude_service_id
    )
    names = _name_clashes(spec, target_clusters, exclude_service_id)
    if clashes or names:
        raise DomainError({key: value for key, value in (("hosts", clashes), ("name", names)) if value})
    return Checked(
        spec=spec, material=material, certificate=certificate, warnings=warnings, target_clusters=target_clusters
    )


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
    others = []
    # Plain rows, not model instances: this reads every service on the port (thousands on a busy gateway), and
    # building the services and both revisions (encrypted TLS material included) was most of a create's time.
    rows = (
        GatewayService.objects.filter(traffic_type=spec["traffic_type"], deleting_at__isnull=True)
        .filter(conflict_candidates(spec))
        .exclude(pk=exclude_service_id)
        .values_list(
            "pk",
            "team__slug",
            "name",
            "namespace",
            "traffic_type",
            "current_revision_id",
            "current_revision__spec",
            "approved_revision_id",
            "approved_revision__spec",
        )
    )
    for pk, team_slug, name, namespace, traffic_type, current_id, current_spec, approved_id, approved_spec in rows:
        revisions = {current_id: current_spec, approved_id: approved_spec}
        revisions.pop(None, None)
        for other_spec in revisions.values():
            if other_spec["port"] != spec["port"]:
                continue
            landed = frozenset(c.name for c in landing(other_spec, clusters))
            others.append(
                conflicts.Claim(
                    service_id=str(pk),
                    team=team_slug,
                    name=name,
                    namespace=namespace,
                    traffic_type=traffic_type,
                    clusters=landed,
                    port=other_spec["port"],
                    protocol=other_spec["protocol"],
                    hosts=tuple(other_spec["hosts"]),
                    tls=bool(other_spec.get("mode")),
                )
            )
    return list(dict.fromkeys(conflicts.find_conflicts(candidate, others)))


EVERY_SERVICE = Q(pk__isnull=False)  # an empty Q() would vanish from an OR instead of matching everything


def conflict_candidates(spec: dict[str, Any]) -> Q:
    """Services that could clash with `spec` on its port: a superset the pure rules then decide on.

    Narrowed with the columns copied from the current revision, so a create on a gateway port carrying
    thousands of services reads only those whose protocol cannot share the port or whose hosts may overlap.
    A service whose approved revision differs from its current one is always read (there are few).

    The host test runs here in Python over the port's `hosts_index` column (one small read), not as one SQL
    condition per host and label: that grew with hosts x labels and broke SQLite's expression limit.
    """
    port = spec["port"]
    tls = bool(spec.get("mode"))
    incompatible = Q(mode="") if tls else ~Q(mode="") | ~Q(protocol__in=validation.PORTAL_HTTP_FAMILY)
    if not tls and spec["protocol"] not in validation.PORTAL_HTTP_FAMILY:
        incompatible = EVERY_SERVICE
    pending_approval = Q(approved_revision__isnull=False) & ~Q(approved_revision=F("current_revision"))
    pending = pending_approval & Q(approved_revision__spec__port=port)
    keys = _HostKeys.of(spec["hosts"])
    if keys is None or incompatible is EVERY_SERVICE:
        return Q(port=port) | pending
    rows = GatewayService.objects.filter(port=port).exclude(incompatible).values_list("pk", "hosts_index")
    overlapping = [pk for pk, index in rows.iterator() if keys.may_overlap(index)]
    return (Q(port=port) & (incompatible | Q(pk__in=overlapping))) | pending


@dataclass(frozen=True)
class _HostKeys:
    """What a stored `hosts_index` ('|host|host|', lower case) must hold to possibly overlap some hosts."""

    names: frozenset[str]  # a stored host equal to one of these (trailing dot ignored)
    suffixes: frozenset[str]  # a stored host ending with '.' + one of these (hosts a wildcard of ours covers)

    @classmethod
    def of(cls, hosts: list[str]) -> _HostKeys | None:
        """None when a host is '*': every service on the port is a candidate."""
        names, suffixes = {"*"}, set()
        for host in hosts:
            name = host.lower().rstrip(".")
            if name == "*":
                return None
            names.add(name)
            labels = name.split(".")
            # Their wildcards that may cover this host (or this wildcard).
            names.update("*." + ".".join(labels[i:]) for i in range(1, len(labels)))
            if name.startswith("*."):
                # Their hosts this wildcard may cover.
                names.add(name[2:])
                suffixes.add(name[2:])
        return cls(frozenset(names), frozenset(suffixes))

    def may_overlap(self, hosts_index: str) -> bool:
        for stored in hosts_index.strip("|").split("|"):
            name = stored.rstrip(".")
            if name in self.names:
                return True
            if self.suffixes:
                parts = name.split(".")
                if any(".".join(parts[i:]) in self.suffixes for i in range(1, len(parts))):
                    return True
        return False


def _name_clashes(spec: dict[str, Any], target_clusters: list[Cluster], exclude_service_id: Any) -> list[str]:
    """Port and Secret names join name and namespace with '-': `a-b` in `c` and `a` in `b-c` would collide."""
    joined = f"{spec['name']}-{spec['namespace']}"
    same = (
        GatewayService.objects.annotate(joined=Concat("name", Value("-"), "namespace"))
        .filter(joined=joined, deleting_at__isnull=True)
        .exclude(pk=exclude_service_id)
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


def _approval_for(target_clusters: list[Cluster]) -> str:
    return Approval.PENDING if any(c.requires_approval for c in target_clusters) else Approval.NOT_REQUIRED


def _service_lock(spec: dict[str, Any]) -> None:
    # Serializes writers that could claim the same gateway port, so conflict checks cannot race.
    advisory_xact_lock(f"gateway-port:{spec['traffic_type']}:{spec['port']}")


def _actor_name(user) -> str:
    return getattr(user, "username", "") or "system"


def gateway_service_create(
    *, team: Team, data: dict[str, Any], user=None, is_platform: bool = False
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
        )
        revision = _add_revision(service=service, checked=checked, user=user)
        audit_record(
            action="gateway_service.created",
            object_type="gateway_service",
            object_id=str(service.pk),
            object_repr=str(service),
            team=team.slug,
            ticket=spec["ticket"],
            changes={k: [None, v] for k, v in spec.items()},
            data={"revision": revision.number, "approval": revision.approval},
        )
        _refresh_statuses(service=service, target_clusters=checked.target_clusters)
    return service, checked.warnings


def gateway_service_update(
    *, service: GatewayService, data: dict[str, Any], user=None, is_platform: bool = False, partial: bool = False
) -> tuple[GatewayService, list[str]]:
    current = service.current_revision
    spec, material = split_input(data)
    if partial:
        merged = copy.deepcopy(current.spec)
        merged.update({k: v for k, v in spec.items() if k in data})
        spec = merged
        if "tls_options" not in data:
            material = current.tls_material if "tls_secret" in spec.get("tls_options", {}) else None
    changed_identity = [f for f in IMMUTABLE_FIELDS if f in data and spec[f] != current.spec[f]]
    if changed_identity:
        raise DomainError(
            {f: [f"'{f}' cannot be changed; create a new gateway service instead."] for f in changed_identity}
        )
    with transaction.atomic():
        _service_lock(spec)
        service = GatewayService.objects.select_for_update().get(pk=service.pk)
        if service.deleting_at:
            raise DomainError({"non_field_errors": ["This gateway service is being deleted."]})
        checked = check_spec(
            team=service.team, spec=spec, material=material, is_platform=is_platform, exclude_service_id=service.pk
        )
        same_material = (checked.material or None) == (current.tls_material or None)
        if checked.spec == current.spec and same_material:
            return service, checked.warnings
        revision = _add_revision(service=service, checked=checked, user=user)
        changes = diff(current.spec, checked.spec)
        if not same_material:
            changes["tls_material"] = ["[redacted]", "[redacted]"]
        audit_record(
            action="gateway_service.updated",
            object_type="gateway_service",
            object_id=str(service.pk),
            object_repr=str(service),
            team=service.team.slug,
            ticket=checked.spec["ticket"],
            changes=changes,
            data={"revision": revision.number, "approval": revision.approval},
        )
        _refresh_statuses(service=service, target_clusters=checked.target_clusters)
    return service, checked.warnings


def _add_revision(*, service: GatewayService, checked: Checked, user) -> GatewayServiceRevision:
    number = (service.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    approval = _approval_for(checked.target_clusters)
    revision = GatewayServiceRevision.objects.create(
        service=service,
        number=number,
        spec=checked.spec,
        tls_material=checked.material,
        certificate=checked.certificate,
        approval=approval,
        author=_actor_name(user),
        ticket=checked.spec.get("ticket") or "",
    )
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


def _refresh_statuses(*, service: GatewayService, target_clusters: list[Cluster]) -> None:
    """Mark where the service should now be, and ask those gateways (and ones it left) to converge."""
    from clusters.enqueue import request_reconcile

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
    for status in left:
        status.state, status.message = State.REMOVING, "No longer targeted; removing."
        status.save(update_fields=["state", "message", "updated_at"])
    cluster_ids = set(targeted) | {s.cluster_id for s in left}
    if cluster_ids:
        request_reconcile(cluster_ids=cluster_ids, traffic_type=service.traffic_type)


def gateway_service_delete(*, service: GatewayService) -> None:
    from clusters.enqueue import request_reconcile

    with transaction.atomic():
        service = GatewayService.objects.select_for_update().select_related("team").get(pk=service.pk)
        if service.deleting_at:
            return
        audit_record(
            action="gateway_service.deleted",
            object_type="gateway_service",
            object_id=str(service.pk),
            object_repr=str(service),
            team=service.team.slug,
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


def revision_approve(*, revision: GatewayServiceRevision, comment: str = "") -> GatewayServiceRevision:
    return _decide(revision=revision, approval=Approval.APPROVED, comment=comment)


def revision_reject(*, revision: GatewayServiceRevision, comment: str = "") -> GatewayServiceRevision:
    return _decide(revision=revision, approval=Approval.REJECTED, comment=comment)


def _decide(*, revision: GatewayServiceRevision, approval: str, comment: str) -> GatewayServiceRevision:
    from gatewayportal.context import current_actor

    with transaction.atomic():
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
        audit_record(
            action=f"gateway_service.{approval}",
            object_type="gateway_service",
            object_id=str(service.pk),
            object_repr=str(service),
            team=service.team.slug,
            ticket=revision.ticket,
            changes={"approval": [Approval.PENDING, approval]},
            data={"revision": revision.number, "comment": comment},
        )
        target_clusters = landing(service.current_revision.spec, Cluster.objects.all())
        _refresh_statuses(service=service, target_clusters=target_clusters)
    return revision


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
        audit_record(
            action=action,
            object_type="team",
            object_id=team.slug,
            object_repr=team.name,
            team=team.slug,
            changes=changes,
        )
    return team


def team_delete(*, team: Team) -> None:
    with transaction.atomic():
        if team.services.exists():
            raise DomainError({"non_field_errors": ["This team still owns gateway services; delete them first."]})
        if team.ticketing_sources.exists():
            raise DomainError(
                {"non_field_errors": ["Ticketing sources are bound to this team; delete or rebind them first."]}
            )
        audit_record(
            action="team.deleted",
            object_type="team",
            object_id=team.slug,
            object_repr=team.name,
            team=team.slug,
            changes=diff(_team_state(team), {}),
        )
        team.delete()


def _team_state(team: Team) -> dict[str, Any]:
    return {
        "slug": team.slug,
        "name": team.name,
        "namespaces": team.namespaces,
        "allowed_domains": team.allowed_domains,
        "allow_wildcards": team.allow_wildcards,
        "members": sorted(team.members.values_list("username", flat=True)),
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
        audit_record(
            action="gateway_service.removed",
            object_type="gateway_service",
            object_id=str(service.id),
            object_repr=str(service),
            team=service.team.slug,
            data={"message": "removed from every cluster"},
        )
        service.delete()
