"""Writes on gateway services and teams: validated, atomic, audited, then reconciled after commit."""

from __future__ import annotations

import copy
import functools
import uuid
from collections import namedtuple
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from audit.actions import audit_record, diff
from clusters.enqueue import request_reconcile
from clusters.models import Cluster
from gatewayportal.compiled import CompiledModelRead, CompiledRead
from gatewayportal.exceptions import DomainError, PreconditionFailed
from gatewayportal.locks import advisory_xact_lock
from services import certificates, conflicts, quotas, rendering, specs, tallies, validation
from services.choices import PORTAL_PROTOCOLS, Approval, State
from services.models import (
    GatewayService,
    GatewayServiceRevision,
    GatewayServiceStatus,
    GatewayTally,
    Team,
    TeamServiceCount,
)
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


# What a write reads of each cluster: targeting, approval gates and host scoping (credentials stay unread).
CLUSTER_FIELDS = ("name", "labels", "enabled", "requires_approval", "namespace_scoped_hosts")

Specs = tallies.Specs  # (current spec, approved spec) of a service
# What the quota checks read of the team, under its row lock.
QUOTA_FIELDS = ("slug", "max_services", "max_hosts_per_gateway", "gateway_budget_share")


@dataclass
class Checked:
    """A spec that passed every rule, ready to be stored (or, from `_prepare`, with `errors` still to answer)."""

    spec: dict[str, Any]
    material: dict[str, Any] | None
    certificate: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    target_clusters: list[Cluster] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    errors: dict[str, Any] = field(default_factory=dict)
    # The Gateways the write touches, locked by the checks (services.tallies): the write records itself in them.
    tallies: dict[int, GatewayTally] = field(default_factory=dict)


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


def _prepare(*, team: Team, spec: dict[str, Any], material: dict[str, Any] | None, is_platform: bool) -> Checked:
    """The rules that need no lock (the spec's own, tenancy, certificate, Istio, target clusters), checked without
    answering yet: a create runs them before it takes the port lock, so that they do not lengthen the time other
    writers on the port wait, and answers them after its name check, as it always has (`_refuse`)."""
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

    clusters = write_clusters()
    usable = allowed_for(clusters, names=team.allowed_clusters, selector=team.allowed_cluster_selector)
    _merge(errors, _cluster_errors(team, spec, clusters, usable))
    _merge(errors, _secret_reference_errors(team, spec, is_platform=is_platform))
    if not spec.get("clusters") and not spec.get("cluster_selector"):
        _merge(
            errors, {"non_field_errors": ["Give target clusters: `clusters` (names) or `cluster_selector` (labels)."]}
        )
    checked = Checked(spec=spec, material=material, certificate=certificate, warnings=warnings, clusters=clusters)
    if errors:
        checked.errors = errors
        return checked
    # The rendered block must pass Istio's own admission rules (a second line of defence).
    server = render_server(spec, GatewaySettings())
    problems = [i for i in validation.validate_server(server) if i.severity == "error"]
    if problems:
        checked.errors = {
            "non_field_errors": [f"Istio would refuse the server block: {i.path}: {i.message}" for i in problems]
        }
        return checked
    checked.target_clusters = landing(spec, usable)
    return checked


def _refuse(checked: Checked) -> None:
    if checked.errors:
        raise DomainError(checked.errors)


def _check_others(
    *,
    team: Team,
    checked: Checked,
    before: Specs | None,
    exclude_service_id: Any,
    rows: tuple[list[Any], list[Any]] | None = None,
) -> None:
    """What depends on the other services (quotas, the byte budget, conflicts, name clashes), under the caller's
    port lock; `rows`: what `_check_rows` found, when the caller has read it already."""
    checked.tallies = _check_quotas(team=team, checked=checked, before=before)
    _check_claims(team=team, checked=checked, exclude_service_id=exclude_service_id, rows=rows)


def _check_claims(
    *, team: Team, checked: Checked, exclude_service_id: Any, rows: tuple[list[Any], list[Any]] | None = None
) -> None:
    """Conflicts with what other services hold, and name clashes."""
    spec, target_clusters = checked.spec, checked.target_clusters
    candidates, same_names = rows if rows is not None else _check_rows(spec, exclude_service_id)
    clashes = _conflicts(
        team=team,
        spec=spec,
        clusters=checked.clusters,
        target_clusters=target_clusters,
        exclude_service_id=exclude_service_id,
        rows=candidates,
    )
    names = _name_clashes(spec, target_clusters, same_names)
    if clashes or names:
        raise DomainError({key: value for key, value in (("hosts", clashes), ("name", names)) if value})


def _check_quotas(*, team: Team, checked: Checked, before: Specs | None) -> dict[int, GatewayTally]:
    """The team's quotas and each target Gateway's byte budget, read under the team's row lock and the locks of the
    Gateways the write touches (their tallies), so that concurrent requests cannot both squeeze through. Returns
    those tallies, locked, for the write to record itself in.

    A change that adds no hosts, no bytes and no cluster is always allowed, even over a quota lowered since.
    """
    spec = checked.spec
    team = _quota_team(team.pk)
    errors: dict[str, Any] = {}
    if before is None:
        # A statement of its own, after the lock: one that waited for the lock must count what that writer added.
        owned = _live_services(team)
        errors = quotas.service_count_errors(team=team.slug, owned=owned, max_services=team.max_services)
    touched = tallies.touched(checked.clusters, spec, *(before or ()))
    locked = tallies.lock(touched, spec["traffic_type"])
    grown_from = before[0] if before is not None else None
    _merge(
        errors,
        _gateway_limit_errors(
            team, spec, grown_from=grown_from, without=before, clusters=checked.target_clusters, locked=locked
        ),
    )
    if errors:
        raise DomainError(errors)
    return locked


def _live_services(team: Team) -> int:
    """How many services the team owns that are not being deleted (the count the database keeps, if it does)."""
    if TeamServiceCount.kept():
        found = _LIVE_COUNT.rows(team_id=team.pk)
        return found[0][0] if found else 0
    return team.services.filter(deleting_at__isnull=True).count()


def check_batch_size(team: Team, declared: int) -> None:
    """Refuse a batch of `declared` services that the team's quota would refuse in part anyway
    (`quotas.batch_errors`); DomainError {"documents": {"non_field_errors": ...}}."""
    errors = quotas.batch_errors(
        team=team.slug, declared=declared, owned=_live_services(team), max_services=team.max_services
    )
    if errors:
        raise DomainError({"documents": errors})


def write_clusters() -> list[Cluster]:
    """Every cluster, with what a write reads of it (`CLUSTER_FIELDS`), by name."""
    return _CLUSTERS.instances()


def _quota_team(pk: int) -> Team:
    """The team's row, locked until the transaction ends, with what the quota checks read (`QUOTA_FIELDS`)."""
    found = _QUOTA_TEAM.instances(pk=pk)
    if not found:
        raise Team.DoesNotExist(f"no team {pk}")
    return found[0]


# A write's fixed reads, compiled once (gatewayportal.compiled).
_CLUSTERS = CompiledModelRead(Cluster, ("id", *CLUSTER_FIELDS), lambda: Cluster.objects.order_by("name"))
_QUOTA_TEAM = CompiledModelRead(
    Team, ("id", *QUOTA_FIELDS), lambda pk: Team.objects.select_for_update().filter(pk=pk), pk=int
)
_LIVE_COUNT = CompiledRead(
    lambda team_id: TeamServiceCount.objects.filter(team=team_id).order_by().values_list("live")[:1], team_id=int
)


def _gateway_limit_errors(
    team: Team,
    spec: dict[str, Any],
    *,
    grown_from: dict[str, Any] | None,
    without: Specs | None,
    clusters: list[Cluster],
    locked: dict[int, GatewayTally],
) -> dict[str, Any]:
    """Would `spec` (replacing `grown_from`, if any) take the team or a Gateway of `clusters` past its limits? What
    stands there comes from the Gateways' tallies, locked by the caller, less the service's own footprint (`without`:
    its specs now)."""
    cost = block_bytes(spec)
    growing = grown_from is None or (
        len(spec["hosts"]) > len(grown_from["hosts"])
        or cost > block_bytes(grown_from)
        or {c.name for c in clusters} - {c.name for c in landing(grown_from, clusters)}
    )
    if not growing or not clusters:
        return {}
    usages = tallies.usages(locked, team_id=team.pk, clusters=clusters, without=without)
    limits = quotas.Limits(
        max_hosts_per_gateway=team.max_hosts_per_gateway,
        gateway_budget_share=team.gateway_budget_share,
        gateway_byte_budget=settings.GATEWAY_BYTE_BUDGET,
    )
    return quotas.gateway_errors(
        team=team.slug, hosts=len(spec["hosts"]), block_bytes=cost, usages=usages, limits=limits
    )


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
    # The Secret the portal writes for a service is `<name>-<namespace>-secret`: look those pairs up by index.
    splits = _splits(name.removesuffix("-secret")) if name.endswith("-secret") else None
    managed = splits is not None and GatewayService.objects.filter(splits).exists()
    granted = [name] if is_platform else list(team.granted_secrets or [])
    return validation.secret_reference_errors(name, granted=granted, managed=managed)


def _conflicts(
    *,
    team: Team,
    spec: dict[str, Any],
    clusters: list[Cluster],
    target_clusters: list[Cluster],
    exclude_service_id: Any,
    rows: list[Any] | None = None,
) -> list[str]:
    """`rows`: the candidates `_check_rows` read, when the caller has read them already."""
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
    claims = claims_on_port(spec, clusters, exclude_service_id, rows=rows)
    return list(dict.fromkeys(conflicts.find_conflicts(candidate, claims)))


def claims_on_port(
    spec: dict[str, Any], clusters: list[Cluster], exclude_service_id: Any, rows: list[Any] | None = None
) -> list[conflicts.Claim]:
    """What holds a claim that may clash with `spec`: on each cluster, only the revision that runs or is approved
    to run there — the current one on an ungated cluster, the approved one on a gated cluster — and not where the
    planner refused it. Pending and rejected revisions hold nothing, so they block no other team.

    `rows`: the candidates as `_check_rows` read them, when the caller has read them already."""
    gated = [c for c in clusters if c.requires_approval]
    ungated = [c for c in clusters if not c.requires_approval]
    if rows is None:
        rows, _ = _check_rows(spec, exclude_service_id, names=False)
    if not rows:
        return []
    refused = set(
        GatewayServiceStatus.objects.filter(service_id__in=[row.pk for row in rows], state=State.REJECTED)
        .exclude(revision=None)
        .values_list("service_id", "cluster__name", "revision")
    )
    claims = []
    for row in rows:
        pk = row.pk
        held_by = (
            (row.current_revision__number, row.current_revision__spec, ungated),
            (row.approved_revision__number, row.approved_revision__spec, gated),
        )
        for number, other_spec, where in held_by:
            if other_spec is None or other_spec["port"] != spec["port"]:
                continue
            held = frozenset(c.name for c in landing(other_spec, where) if (pk, c.name, number) not in refused)
            if held:
                claims.append(
                    conflicts.Claim(
                        service_id=str(pk),
                        team=row.team__slug,
                        name=row.name,
                        namespace=row.namespace,
                        traffic_type=row.traffic_type,
                        clusters=held,
                        port=other_spec["port"],
                        protocol=other_spec["protocol"],
                        hosts=tuple(other_spec["hosts"]),
                        tls=bool(other_spec.get("mode")),
                    )
                )
    return claims


# The portal's protocols that may not share a port with a plain-text HTTP server.
NOT_HTTP = tuple(p for p in PORTAL_PROTOCOLS if p not in validation.PORTAL_HTTP_FAMILY)

# What the conflict and name checks read of each service they find (`_check_rows`): plain rows, not model instances
# (building the services and both revisions, encrypted TLS material included, was most of a create's time when it
# read every service on the port).
CHECK_COLUMNS = (
    "pk",
    "team__slug",
    "name",
    "namespace",
    "traffic_type",
    "deleting_at",
    "current_revision__number",
    "current_revision__spec",
    "approved_revision__number",
    "approved_revision__spec",
)


def _check_rows(spec: dict[str, Any], exclude_service_id: Any, *, names: bool = True) -> tuple[list[Any], list[Any]]:
    """What the conflict and name checks read, in one statement (a union of index look-ups): (the live services of
    `spec`'s traffic type that could clash with it on its port, `conflict_candidates`; with `names`, the services
    whose name and namespace join with '-' as `spec`'s do, its own name among them, deleting or not), as rows of
    `CHECK_COLUMNS`. A same-name row may also be a candidate, which the pure rules then decide on like any other."""
    return CheckStatement(spec, exclude_service_id, names=names).send()


CheckRow = namedtuple("CheckRow", CHECK_COLUMNS)


class CheckStatement:
    """`_check_rows`' statement, made ready when made and sent (and its rows sorted) by `send`. A create makes it
    before it takes the port lock and sends it under the lock, so that other writers on the port do not wait while
    the SQL is written.

    The SQL is written once per shape (`_check_read`: which branches, how many host keys and name splits), by the
    ORM from the querysets below, and sent again with each check's own values: building and compiling the union
    took longer than the database's answer, on every create."""

    def __init__(self, spec: dict[str, Any], exclude_service_id: Any, *, names: bool = True) -> None:
        self.spec, self.names = spec, names
        self.joined = f"{spec['name']}-{spec['namespace']}"
        kind, hosts, prefixes = _candidate_keys(spec)
        pairs = _pairs(self.joined) if names else []
        values: dict[str, Any] = {"traffic_type": spec["traffic_type"], "port": spec["port"]}
        values.update((f"host_{i}", host) for i, host in enumerate(hosts))
        values.update((f"under_{i}", prefix) for i, prefix in enumerate(prefixes))
        for i, (name, namespace) in enumerate(pairs):
            values[f"name_{i}"], values[f"namespace_{i}"] = name, namespace
        if exclude_service_id is not None:
            values["exclude"] = uuid.UUID(str(exclude_service_id))
        self.read = _check_read(kind, len(hosts), len(prefixes), len(pairs) if names else None, "exclude" in values)
        self.read.compiled()  # the SQL now (the first time this shape is read), the rows when sent
        self.values = values

    def send(self) -> tuple[list[Any], list[Any]]:
        rows = list(map(CheckRow._make, self.read.rows(**self.values)))
        traffic_type = self.spec["traffic_type"]
        candidates = [r for r in rows if r.traffic_type == traffic_type and r.deleting_at is None]
        same = [r for r in rows if f"{r.name}-{r.namespace}" == self.joined] if self.names else []
        return candidates, same


@functools.lru_cache(maxsize=128)
def _check_read(kind: str, hosts: int, prefixes: int, pairs: int | None, excluding: bool) -> CompiledRead:
    """The check's read for one shape: `kind` of candidate look-ups (`_candidate_keys`) with `hosts` names and
    `prefixes` reversed domains, `pairs` name splits (None: no name check), and whether a service is left out."""
    parameters: dict[str, type] = {"traffic_type": str, "port": int}
    parameters |= {f"host_{i}": str for i in range(hosts)} | {f"under_{i}": str for i in range(prefixes)}
    for i in range(pairs or 0):
        parameters[f"name_{i}"] = parameters[f"namespace_{i}"] = str
    if excluding:
        parameters["exclude"] = uuid.UUID

    def build(**values: Any) -> QuerySet:
        # The look-ups find ids only; the rows are joined once, around them (half the planning of joining each).
        ids = GatewayService.objects.order_by().values_list("pk")
        live = ids.filter(traffic_type=values["traffic_type"], deleting_at__isnull=True)
        branches = _candidate_branches(
            live,
            kind=kind,
            port=values["port"],
            hosts=[values[f"host_{i}"] for i in range(hosts)],
            prefixes=[values[f"under_{i}"] for i in range(prefixes)],
        )
        if pairs is not None:
            branches.append(
                ids.filter(_any_pair([(values[f"name_{i}"], values[f"namespace_{i}"]) for i in range(pairs)]))
            )
        union = branches[0].union(*branches[1:], all=True) if len(branches) > 1 else branches[0]
        found = GatewayService.objects.filter(pk__in=union)
        if excluding:
            found = found.exclude(pk=values["exclude"])
        return found.order_by().values_list(*CHECK_COLUMNS)

    return CompiledRead(build, **parameters)


def conflict_candidates(spec: dict[str, Any], services: QuerySet) -> list[QuerySet]:
    """`services` narrowed to those that could clash with `spec` on its port: a superset the pure rules then decide
    on, as index look-ups to read as one union (a service may be found by more than one).

    Found with indexes, so a create on a port that carries thousands of services reads only those that may clash,
    whatever the port holds: the services there whose protocol cannot share the port with `spec` (the columns
    copied from the current revision, indexed with the port), those with a host that may overlap one of `spec`'s
    (joined from the host index, `GatewayServiceHost`: a handful of rows), and every service whose approved
    revision is not its current one (`awaiting_decision`, indexed; there are few), whose approved revision's port
    is checked in Python by the caller.
    """
    kind, hosts, prefixes = _candidate_keys(spec)
    return _candidate_branches(services, kind=kind, port=spec["port"], hosts=hosts, prefixes=prefixes)


def _candidate_keys(spec: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """How `conflict_candidates` looks `spec`'s rivals up: ("tls", "http" or "port": every service on the port),
    the stored hosts to look up by name, and the reversed domains whose hosts to look up by prefix."""
    if spec.get("mode"):
        kind = "tls"
    elif spec["protocol"] in validation.PORTAL_HTTP_FAMILY:
        kind = "http"
    else:
        return "port", [], []
    keys = validation.stored_overlap_keys(spec["hosts"])
    if keys is None:
        return "port", [], []
    names, suffixes = keys
    # Stored hosts equal to a name, or under a suffix: a prefix of the reversed host, which the index serves.
    return kind, sorted(names), [("." + suffix)[::-1] for suffix in sorted(suffixes)]


def _candidate_branches(
    services: QuerySet, *, kind: str, port: Any, hosts: list[Any], prefixes: list[Any]
) -> list[QuerySet]:
    pending = Q(awaiting_decision=True)
    if kind == "port":
        return [services.filter(Q(port=port) | pending)]
    if kind == "tls":
        incompatible = Q(port=port, mode="")
    else:
        # `mode > ''`: a TLS mode is set (never NULL), in a form the (port, mode) index serves.
        incompatible = Q(port=port, mode__gt="") | Q(port=port, protocol__in=NOT_HTTP)
    lookup = Q(indexed_hosts__host__in=hosts)
    for prefix in prefixes:
        lookup |= Q(indexed_hosts__reversed_host__startswith=prefix)
    return [services.filter(incompatible | pending), services.filter(lookup, port=port)]


def _splits(joined: str) -> Q | None:
    """Every (name, namespace) whose `<name>-<namespace>` is `joined`: exact look-ups on the unique index (None when
    there is no such pair)."""
    return _any_pair(_pairs(joined))


def _pairs(joined: str) -> list[tuple[str, str]]:
    """Every (name, namespace) that joins with '-' as `joined`."""
    return [(joined[:i], joined[i + 1 :]) for i, char in enumerate(joined) if char == "-"]


def _any_pair(pairs: list[tuple[Any, Any]]) -> Q | None:
    found = None
    for name, namespace in pairs:
        pair = Q(name=name, namespace=namespace)
        found = pair if found is None else found | pair
    return found


def _name_clashes(spec: dict[str, Any], target_clusters: list[Cluster], same: list[Any]) -> list[str]:
    """Port and Secret names join name and namespace with '-': `a-b` in `c` and `a` in `b-c` would collide."""
    joined = f"{spec['name']}-{spec['namespace']}"
    messages = []
    for other in same:
        if other.deleting_at is None and landing(other.current_revision__spec, target_clusters):
            messages.append(
                f"'{spec['name']}' in namespace '{spec['namespace']}' would share the gateway port and TLS secret "
                f"names '*-{joined}' with {other.team__slug}/{other.name} on a common cluster; choose another name."
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
    and the block stays there until it is approved (every create and update `_prepare` checks names a target)."""
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
    """A new service, with its first revision, statuses and audit event.

    Creates on a port wait for each other (the port lock) only for what other services decide: the name check,
    quotas, byte budget and conflicts, then the service row itself. The rules that read no other service run
    before the lock, and so are written the rows that only this service holds (revision, host index, statuses,
    audit event): their foreign keys to the service row are checked at commit, and a refusal rolls them back.

    The new instance carries what its answer shows, as written: its statuses (as `prefetch_related` leaves them)
    and `clusters_by_name`, every cluster as the checks read them (`selectors.gateway_service_view`'s context).
    """
    spec, material = split_input(data)
    checked = _prepare(team=team, spec=spec, material=material, is_platform=is_platform)
    service = GatewayService(
        name=spec["name"],
        team=team,
        namespace=spec["namespace"],
        traffic_type=spec["traffic_type"],
        created_by=_actor_name(user),
        apply_set=apply_set,
    )
    check = CheckStatement(spec, exclude_service_id=None)
    with transaction.atomic():
        if not checked.errors:
            _write_its_own_rows(service=service, checked=checked, user=user, apply_set=apply_set)
        _service_lock(spec)
        rows = check.send()
        same_names = rows[1]
        # Only in the team's own namespaces: elsewhere the tenancy check answers first, so a caller cannot learn
        # which names exist in namespaces that are not theirs.
        in_own_namespace = spec["namespace"] in team.namespaces
        if in_own_namespace and any(s.namespace == spec["namespace"] and s.name == spec["name"] for s in same_names):
            raise DomainError(
                {
                    "name": [
                        f"A gateway service named '{spec['name']}' already exists in namespace "
                        f"'{spec['namespace']}'. Names are unique per namespace."
                    ]
                }
            )
        _refuse(checked)
        _check_others(team=team, checked=checked, before=None, exclude_service_id=None, rows=rows)
        service.save(force_insert=True)
        tallies.record(checked.tallies, team_id=team.pk, before=None, after=_specs(service))
    service.clusters_by_name = {c.name: c for c in checked.clusters}
    return service, checked.warnings


def _write_its_own_rows(*, service: GatewayService, checked: Checked, user, apply_set: str) -> None:
    """A new service's first revision, host index, statuses and audit event, before its own row is written."""
    revision = _next_revision(service=service, checked=checked, user=user, number=1)
    revision.save()
    service._save_host_keys(known=set())
    spec = checked.spec
    _audit_service(
        service,
        action="gateway_service.created",
        ticket=spec["ticket"],
        changes={k: [None, v] for k, v in spec.items()},
        data={"revision": revision.number, "approval": revision.approval}
        | ({"apply_set": apply_set} if apply_set else {}),
    )
    _refresh_statuses(service=service, target_clusters=checked.target_clusters, new=True)


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
    request = _Request.of(data, partial=partial, expected_revisions=expected_revisions)
    refusal = None
    with transaction.atomic():
        # Read first without a lock: a request that changes nothing (most of a GitOps sync, which re-sends every
        # service) writes nothing, so it takes no lock at all, neither the service's row nor the port's nor the
        # Gateways' tallies. A no-op passes every quota; conflicts and name clashes are read as they stand and
        # refused as ever.
        service, spec, material, checked = _read_update(service, request, is_platform)
        if not checked.errors and _is_no_op(service.current_revision, checked):
            return service, check_no_op(NoOp(service, checked))
        # A change: the port's lock, then the service's row, in the order an approval takes them (`_decide`), so
        # that a batch holding rows never waits for a port an approval holds while it waits for one of those rows.
        # Under the row lock the change is merged again onto the latest revision, never one a concurrent writer
        # has replaced meanwhile.
        _service_lock(spec)
        read = service.current_revision_id
        service = GatewayService.objects.select_for_update().get(pk=service.pk)
        spec, material = _merged(service, request)
        if service.current_revision_id != read:
            _service_lock(spec)  # the same lock, unless the revision merged onto moved the service to another port
            checked = _prepare(team=service.team, spec=spec, material=material, is_platform=is_platform)
            if not checked.errors and _is_no_op(service.current_revision, checked):
                return service, check_no_op(NoOp(service, checked))
        current = service.current_revision
        same_material = _same_material(current, checked)
        _refuse(checked)
        _check_others(team=service.team, checked=checked, before=_specs(service), exclude_service_id=service.pk)
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


@dataclass(frozen=True)
class NoOp:
    """An update found to change nothing (`read_no_op`), its conflicts and name clashes still to be read
    (`check_no_op`)."""

    service: GatewayService
    checked: Checked


def read_no_op(*, service: GatewayService, data: dict[str, Any], is_platform: bool = False) -> NoOp | None:
    """Without any lock: the PUT of `data` when it would change nothing, else None (a change, or a request the rules
    that need no other service refuse: `gateway_service_update` answers those). An apply reads its documents so
    before it writes any, and checks the no-ops (`check_no_op`) once its changes are written."""
    service, _, _, checked = _read_update(service, _Request.of(data), is_platform)
    if checked.errors or not _is_no_op(service.current_revision, checked):
        return None
    return NoOp(service, checked)


def check_no_op(no_op: NoOp) -> list[str]:
    """A no-op's conflicts and name clashes, read as they stand (it writes nothing, so it holds no lock), refused as
    a change's would be; its warnings."""
    _check_claims(team=no_op.service.team, checked=no_op.checked, exclude_service_id=no_op.service.pk)
    return no_op.checked.warnings


@dataclass(frozen=True)
class _Request:
    """An update as asked: its payload (`data`), split into spec and TLS material, and how it is merged."""

    data: dict[str, Any]
    given: dict[str, Any]
    material: dict[str, Any] | None
    partial: bool = False
    expected_revisions: Collection[int] | None = None

    @classmethod
    def of(cls, data: dict[str, Any], **how: Any) -> _Request:
        given, material = split_input(data)
        return cls(data, given, material, **how)


def _read_update(
    service: GatewayService, request: _Request, is_platform: bool
) -> tuple[GatewayService, dict[str, Any], dict[str, Any] | None, Checked]:
    """An update as read without a lock: the service, the spec and material merged onto its current revision, and
    what the rules that need no other service say of them."""
    service = GatewayService.objects.select_related("team", "current_revision").get(pk=service.pk)
    spec, material = _merged(service, request)
    return service, spec, material, _prepare(team=service.team, spec=spec, material=material, is_platform=is_platform)


def _merged(service: GatewayService, request: _Request) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """An update's spec and TLS material: the request's, or (a PATCH) merged onto the service's current revision;
    refused when the service has moved on from the expected revisions, is being deleted, or would change identity."""
    current = service.current_revision
    check_expected_revision(current, request.expected_revisions)
    if service.deleting_at:
        raise DomainError({"non_field_errors": ["This gateway service is being deleted."]})
    given, data = request.given, request.data
    spec, material = copy.deepcopy(given), request.material
    if request.partial:
        spec = copy.deepcopy(current.spec)
        spec.update({k: copy.deepcopy(v) for k, v in given.items() if k in data})
        spec["ticket"] = given["ticket"]
        if "tls_options" not in data:
            material = current.tls_material if "tls_secret" in spec.get("tls_options", {}) else None
    changed_identity = [f for f in IMMUTABLE_FIELDS if f in data and spec[f] != current.spec[f]]
    if changed_identity:
        raise DomainError(
            {f: [f"'{f}' cannot be changed; create a new gateway service instead."] for f in changed_identity}
        )
    return spec, material


def _is_no_op(current: GatewayServiceRevision, checked: Checked) -> bool:
    """Would `checked` add nothing to the service whose current revision is `current`?"""
    return _same_material(current, checked) and _unchanged(current.spec, checked.spec)


def _same_material(current: GatewayServiceRevision, checked: Checked) -> bool:
    return (checked.material or None) == (current.tls_material or None)


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
    """The service's next revision, made current (and approved when no gate applies). Recorded in the Gateways'
    tallies, which the caller has locked (`checked.tallies`)."""
    before = _specs(service)
    tallies.check_locked(checked.tallies, tallies.touched(checked.clusters, checked.spec, *before))
    number = (service.revisions.aggregate(n=Max("number"))["n"] or 0) + 1
    revision = _next_revision(service=service, checked=checked, user=user, author=author, number=number)
    revision.save()
    fields = ["current_revision", "port", "protocol", "mode", "hosts_index", "updated_at"]
    if service.approved_revision is revision:
        fields.append("approved_revision")
    service.save(update_fields=fields)
    tallies.record(checked.tallies, team_id=service.team_id, before=before, after=_specs(service))
    return revision


def _next_revision(
    *, service: GatewayService, checked: Checked, user, number: int, author: str | None = None
) -> GatewayServiceRevision:
    """The revision `number` of the service (not saved yet), and the service's fields that follow it (not saved):
    current revision, the columns copied from it, and the approved revision when no gate applies."""
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
    service.current_revision = revision
    service.port = checked.spec["port"]
    service.protocol = checked.spec["protocol"]
    service.mode = checked.spec.get("mode") or ""
    service.hosts_index = "|" + "|".join(h.lower() for h in checked.spec["hosts"]) + "|"
    if approval == Approval.NOT_REQUIRED:
        service.approved_revision = revision
    return revision


def _specs(service: GatewayService) -> Specs:
    """The specs of the service's current and approved revisions (what it stands for on each Gateway)."""
    current, approved = service.current_revision, service.approved_revision
    return (current.spec if current else None, approved.spec if approved else None)


def render_revision(revision: GatewayServiceRevision) -> None:
    """Store the revision's rendered block and digests on it (render once: the worker compares digests)."""
    rendered = rendering.render_revision(
        revision.spec, revision.tls_material, service_id=str(revision.service_id), team=revision.service.team.slug
    )
    revision.rendered_block = rendered.block
    revision.block_digest = rendered.block_digest
    revision.secret_digest = rendered.secret_digest


def _refresh_statuses(*, service: GatewayService, target_clusters: list[Cluster], new: bool = False) -> None:
    """Mark where the service should now be, and ask those gateways (and ones it left) to converge. A `new`
    service has no statuses yet: they are written in one INSERT."""
    current = service.current_revision
    targeted = {c.pk: c for c in target_clusters}
    approved = service.approved_revision
    if new:
        written = GatewayServiceStatus.objects.bulk_create(
            [
                GatewayServiceStatus(service=service, cluster=cluster, traffic_type=service.traffic_type, **fields)
                for cluster in target_clusters
                for fields in [_status_fields(cluster, current, approved)]
            ]
        )
        # Known as written, in the order a read gives them (selectors._statuses): the answer reads them from here.
        service._prefetched_objects_cache = {"statuses": sorted(written, key=lambda s: s.cluster.name)}
        if targeted:
            request_reconcile(cluster_ids=targeted, traffic_type=service.traffic_type)
        return
    for cluster in target_clusters:
        GatewayServiceStatus.objects.update_or_create(
            service=service,
            cluster=cluster,
            defaults={"traffic_type": service.traffic_type, **_status_fields(cluster, current, approved)},
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


def _status_fields(
    cluster: Cluster, current: GatewayServiceRevision, approved: GatewayServiceRevision | None
) -> dict[str, str]:
    """State and message on a target cluster once the current revision is written."""
    if cluster.requires_approval and current.approval == Approval.PENDING:
        running = f"; revision {approved.number} keeps running" if approved else ""
        return {"state": State.AWAITING_APPROVAL, "message": f"Revision {current.number} awaits approval{running}."}
    if cluster.requires_approval and current.approval == Approval.REJECTED:
        running = f"; revision {approved.number} keeps running" if approved else ""
        return {"state": State.PENDING, "message": f"Revision {current.number} was rejected{running}."}
    return {"state": State.PENDING, "message": ""}


def gateway_service_delete(*, service: GatewayService, expected_revisions: Collection[int] | None = None) -> None:
    with transaction.atomic():
        service = GatewayService.objects.select_for_update().select_related("team").get(pk=service.pk)
        check_expected_revision(service.current_revision, expected_revisions)
        if service.deleting_at:
            return
        current = service.current_revision
        if current is not None and is_removal(current.spec) and current.approval == Approval.PENDING:
            return  # its removal already awaits approval
        # What the service stands for leaves the Gateways' tallies: lock them before it changes.
        clusters = write_clusters()
        before = _specs(service)
        locked = tallies.lock(tallies.touched(clusters, *before), service.traffic_type)
        if current is not None and _gated_running(service):
            _request_removal(service, clusters=clusters, locked=locked)
            return
        _start_removal(service, locked=locked, before=before)


def _request_removal(service: GatewayService, *, clusters: list[Cluster], locked: dict[int, GatewayTally]) -> None:
    """Deleting a service that runs on a gated cluster: a removal revision (no targets) awaits approval there; the
    ungated clusters drop the block at once, the gated ones keep the approved revision until it is approved."""
    current = service.current_revision
    spec = {**copy.deepcopy(current.spec), "clusters": [], "cluster_selector": None, "ticket": ""}
    checked = Checked(spec=spec, material=None, certificate=None, clusters=clusters, tallies=locked)
    from gatewayportal.context import current_actor

    revision = _add_revision(service=service, checked=checked, user=None, author=current_actor().name)
    _audit_service(
        service,
        action="gateway_service.deleted",
        changes=diff(current.spec, spec),
        data={"revision": revision.number, "approval": revision.approval},
    )
    _refresh_statuses(service=service, target_clusters=[])


def _start_removal(
    service: GatewayService, *, locked: dict[int, GatewayTally], before: Specs, audit: bool = True
) -> None:
    """The block and any secret the portal created leave every cluster; the service goes when they are gone. It
    leaves the Gateways' tallies now (`locked`: theirs, locked before it changed; `before`: its specs then)."""
    tallies.record(locked, team_id=service.team_id, before=before, after=None)
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
        # Unlocked when there is nothing to write (an apply's every unchanged document); otherwise the port's lock
        # before the row's, in the order every writer takes them (see gateway_service_update).
        service = GatewayService.objects.select_related("team", "current_revision").get(pk=service.pk)
        if service.apply_set == apply_set:
            return False
        if service.current_revision is not None:
            _service_lock(service.current_revision.spec)
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
        before = _specs(service)
        locked = _check_approval_clashes(service, revision) if approval == Approval.APPROVED else {}
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
            _start_removal(service, locked=locked, before=before, audit=False)
        else:
            if approval == Approval.APPROVED:
                tallies.record(locked, team_id=service.team_id, before=before, after=_specs(service))
            target_clusters = landing(service.current_revision.spec, Cluster.objects.all())
            _refresh_statuses(service=service, target_clusters=target_clusters)
    return revision


def _check_approval_clashes(service: GatewayService, revision: GatewayServiceRevision) -> dict[int, GatewayTally]:
    """Pending revisions hold no claim, so two may clash: the one approved second is refused on the gated
    clusters where the first now holds the port or host (the ungated ones already run it). Returns the tallies of
    the Gateways the approval touches, locked, for it to record itself in."""
    clusters = write_clusters()
    gated = [c for c in landing(revision.spec, clusters) if c.requires_approval]
    clashes = _conflicts(
        team=service.team, spec=revision.spec, clusters=clusters, target_clusters=gated, exclude_service_id=service.pk
    )
    # Approved, it counts in the Gateway's byte budget (pending, it counted only in its team's share).
    team = _quota_team(service.team_id)
    before = _specs(service)
    locked = tallies.lock(tallies.touched(clusters, revision.spec, *before), service.traffic_type)
    over = _gateway_limit_errors(
        team, revision.spec, grown_from=before[1], without=before, clusters=gated, locked=locked
    ).get("hosts", [])
    if clashes or over:
        raise DomainError(
            {"non_field_errors": [f"Revision {revision.number} cannot be approved: {m}" for m in clashes + over]}
        )
    return locked


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
