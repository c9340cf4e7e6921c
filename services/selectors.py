"""Reads: what a user may see, and the public view of a gateway service."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.db.models import (
    IntegerField,
    OuterRef,
    Prefetch,
    QuerySet,
    Subquery,
    Sum,
    Value,
    prefetch_related_objects,
)

from clusters import messages
from clusters.models import Cluster
from gatewayportal.compiled import CompiledModelRead, CompiledRead
from gatewayportal.roles import is_platform
from services.choices import Approval
from services.models import (
    GatewayService,
    GatewayServiceRevision,
    GatewayServiceStatus,
    ListVersion,
    Team,
    TeamServiceCount,
)
from services.rendering import GatewaySettings, credential_name, render_server
from services.targeting import landing


def teams_for_user(user) -> QuerySet[Team]:
    return _user_teams(is_platform(user), user.pk)


def _user_teams(platform: bool, user_id: Any) -> QuerySet[Team]:
    """The teams of a user (`user_id`): every team for a platform engineer, a member's own otherwise."""
    return Team.objects.all() if platform else Team.objects.filter(members=user_id)


def teams_by_slug(user) -> list[Team]:
    """`teams_for_user`, in slug order: the teams a create, import or export may name (compiled once)."""
    if is_platform(user):
        return _ALL_TEAMS.instances()
    return _MEMBER_TEAMS.instances(user_id=user.pk)


def gateway_services_for_user(user) -> QuerySet[GatewayService]:
    # The current revision is joined: a page is read in (namespace, name) index order and stops after its rows,
    # so the join touches only the page's revisions. Statuses (several per service) are prefetched.
    return visible_services(user).select_related("team", "current_revision").prefetch_related(_statuses())


def visible_services(user, *, teams: Collection[int] | None = None) -> QuerySet[GatewayService]:
    """The services the user may see, nothing joined (a list reads them as rows: `gateway_service_rows`).

    `teams`: the ids of the user's teams as the caller has already read them (the list cache's key,
    `list_versions`), so that what is read matches what it was read for; otherwise read here."""
    teams = _teams_of(user, teams)
    # The user's teams as a subquery, not a join: the page stays one index walk, a count one scan of the team index.
    return GatewayService.objects.all() if teams is None else GatewayService.objects.filter(team__in=teams)


def _teams_of(user, known: Collection[int] | None = None) -> QuerySet | list[int] | None:
    """The ids of the user's teams (a subquery, or `known`: as the caller read them), None for a platform engineer
    (every team)."""
    if is_platform(user):
        return None
    return _member_teams(user.pk) if known is None else list(known)


def _member_teams(user_id: int) -> QuerySet:
    return Team.members.through.objects.filter(user_id=user_id).values("team_id")


def list_versions(user) -> tuple | None:
    """Whose services the user's list shows and how far they have changed, in one query (`ListVersion`), or None
    where the database keeps no versions (SQLite).

    A platform engineer's: ("platform", the sum of every version), which every counted commit changes. A team
    member's: ("teams", ((team id, its version, the clusters' version), ...)), so a membership change is another
    answer too. Read before the list itself: what the list then reads is at least as new as these versions.
    """
    if not ListVersion.kept():
        return None
    if is_platform(user):
        return ("platform", _ALL_VERSIONS.rows()[0][0])
    return ("teams", tuple(sorted(_MEMBER_VERSIONS.rows(user_id=user.pk))))


def _member_versions(user_id: int) -> QuerySet:
    versions = ListVersion.objects.order_by()
    clusters = versions.filter(scope=ListVersion.CLUSTERS).values("version")
    return (
        _member_teams(user_id)
        .annotate(
            version=Subquery(versions.filter(scope=OuterRef("team_id")).values("version")),
            clusters=Subquery(clusters),
        )
        .values_list("team_id", "version", "clusters")
    )


# The two reads of every cached list, compiled once (gatewayportal.compiled).
_ALL_VERSIONS = CompiledRead(
    # Grouped by a constant, which the ORM leaves out: one sum over the table, one row even when it is empty.
    lambda: (
        ListVersion.objects.order_by()
        .annotate(every=Value(1, output_field=IntegerField()))
        .values("every")
        .annotate(total=Sum("version"))
        .values_list("total")
    )
)
_MEMBER_VERSIONS = CompiledRead(_member_versions, user_id=int)
# And `teams_by_slug`'s, for a create, an import and an export.
_ALL_TEAMS = CompiledModelRead(Team, None, lambda: _user_teams(True, None).order_by("slug"))
_MEMBER_TEAMS = CompiledModelRead(Team, None, lambda user_id: _user_teams(False, user_id).order_by("slug"), user_id=int)


def _statuses() -> Prefetch:
    # The cluster's name only: its other columns include credentials, decrypted on every read.
    statuses = GatewayServiceStatus.objects.select_related("cluster").only(*_STATUS_MODEL_FIELDS, "cluster__name")
    return Prefetch("statuses", queryset=statuses.order_by("cluster__name"))


def pending_revisions_for_ticket(*, ticket: str, team: Team | None = None) -> QuerySet[GatewayServiceRevision]:
    qs = GatewayServiceRevision.objects.filter(ticket=ticket, approval=Approval.PENDING).select_related(
        "service", "service__team"
    )
    if team is not None:
        qs = qs.filter(service__team=team)
    return qs


def clusters_by_name() -> dict[str, Cluster]:
    """What a service's view needs of each cluster (landing, host scoping); credentials stay encrypted, unread."""
    fields = ("name", "labels", "enabled", "requires_approval", "namespace_scoped_hosts")
    return {c.name: c for c in Cluster.objects.only(*fields)}


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


def spec_view(
    spec: dict[str, Any], clusters: dict[str, Cluster], known: dict[Any, GatewaySettings] | None = None
) -> dict[str, Any]:
    """`known`: settings already worked out for specs with the same targets (a page's services share a few)."""
    if known is None:
        settings = gateway_settings_for(spec, clusters)
    else:
        targets = (tuple(spec.get("clusters") or ()), tuple(sorted((spec.get("cluster_selector") or {}).items())))
        settings = known.get(targets)
        if settings is None:
            settings = known[targets] = gateway_settings_for(spec, clusters)
    return {"server_block": render_server(spec, settings), "credential_name": credential_name(spec)}


def gateway_service_view(service: GatewayService, context: dict[str, Any] | None = None) -> dict[str, Any]:
    prefetch_related_objects([service], _statuses())  # one query, none when the service came with its statuses
    revision = service.current_revision
    statuses = [
        {
            "cluster": s.cluster.name,
            "traffic_type": s.traffic_type,
            "state": s.state,
            "revision": s.revision,
            "message": s.message,
            "updated_at": s.updated_at,
        }
        for s in service.statuses.all()
    ]
    row = {field: getattr(service, field) for field in _SERVICE_FIELDS}
    row.update({"id": service.pk, "team__slug": service.team.slug})
    row.update({f"current_revision__{field}": getattr(revision, field) for field in _REVISION_FIELDS})
    return _view(row, statuses, context)


_SERVICE_FIELDS = ("name", "namespace", "traffic_type", "created_at", "updated_at", "created_by")
_REVISION_FIELDS = ("spec", "tls_material", "number", "approval", "approval_reference", "certificate")
_STATUS_FIELDS = ("traffic_type", "state", "revision", "message", "updated_at")
_STATUS_MODEL_FIELDS = ("service", "cluster", "traffic_type", "state", "revision", "message", "updated_at")


class ServiceRows:
    """Services as plain rows for `gateway_service_list_views`, to paginate: no model instances (a list's main
    cost), sliced as rows that join the team slug and current revision for that page only.

    Counted from the teams' service counts when the rows are all of a user's services (`user`), which the database
    keeps (`TeamServiceCount`); otherwise (a filtered list, or SQLite) on the services alone, with the user's teams
    as a subquery: one scan of the team index.
    """

    ordered = True

    def __init__(self, services: QuerySet[GatewayService], user=None, teams: Collection[int] | None = None) -> None:
        self.services = services
        self.user = user
        self.teams = teams
        self.rows = services.values(
            "id", "team__slug", *_SERVICE_FIELDS, *(f"current_revision__{field}" for field in _REVISION_FIELDS)
        )

    def count(self) -> int:
        if self.user is not None and TeamServiceCount.kept():
            teams, counts = _teams_of(self.user, self.teams), TeamServiceCount.objects.all()
            counts = counts if teams is None else counts.filter(team__in=teams)
            return counts.aggregate(services=Sum("services"))["services"] or 0
        return self.services.order_by().count()

    def __getitem__(self, index):
        return self.rows[index]

    def __iter__(self):
        return iter(self.rows)


def gateway_service_rows(
    services: QuerySet[GatewayService], *, every_one_of=None, teams: Collection[int] | None = None
) -> ServiceRows:
    """`services`: from `visible_services`, maybe filtered; `every_one_of`: the user whose every service they are
    (a list without filters); `teams`: that user's teams as `visible_services` was given them."""
    return ServiceRows(services, user=every_one_of, teams=teams)


def gateway_service_list_views(rows: list[dict[str, Any]], context: dict[str, Any]) -> list[dict[str, Any]]:
    """The public views of a page of `gateway_service_rows`, with their statuses in one query (named after the
    clusters the views read anyway, rather than joined to them)."""
    statuses: dict[Any, list[dict[str, Any]]] = {row["id"]: [] for row in rows}
    if rows:
        clusters = _clusters(context)
        names = {cluster.pk: name for name, cluster in clusters.items()}
        found = list(
            GatewayServiceStatus.objects.filter(service_id__in=list(statuses)).values(
                "service_id", "cluster_id", *_STATUS_FIELDS
            )
        )
        if any(status["cluster_id"] not in names for status in found):  # a cluster registered meanwhile
            clusters = context["clusters_by_name"] = clusters_by_name()
            names = {cluster.pk: name for name, cluster in clusters.items()}
        for status in sorted(found, key=lambda status: names.get(status["cluster_id"], "")):
            name = names.get(status.pop("cluster_id"))
            if name is not None:  # else the cluster is gone, and its statuses with it
                statuses[status.pop("service_id")].append({"cluster": name, **status})
    known: dict[Any, GatewaySettings] = {}
    return [_view(row, statuses[row["id"]], context, known) for row in rows]


def _clusters(context: dict[str, Any]) -> dict[str, Cluster]:
    clusters = context.get("clusters_by_name")
    if clusters is None:
        clusters = context["clusters_by_name"] = clusters_by_name()
    return clusters


def _view(
    row: dict[str, Any],
    statuses: list[dict[str, Any]],
    context: dict[str, Any] | None,
    known: dict[Any, GatewaySettings] | None = None,
) -> dict[str, Any]:
    """The one shape of a service in the API, from a flat row (service, team slug, current revision)."""
    context = context if context is not None else {}
    clusters = _clusters(context)
    platform = context.get("viewer_is_platform")
    if platform is None:
        platform = context["viewer_is_platform"] = viewer_is_platform(context)
    spec = row["current_revision__spec"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "team": row["team__slug"],
        "namespace": row["namespace"],
        "hosts": spec["hosts"],
        "port": spec["port"],
        "protocol": spec["protocol"],
        "mode": spec.get("mode"),
        "traffic_type": row["traffic_type"],
        "tls_options": public_tls_options(spec, row["current_revision__tls_material"]),
        "https_redirect": spec.get("https_redirect", False),
        "min_protocol_version": spec.get("min_protocol_version"),
        "max_protocol_version": spec.get("max_protocol_version"),
        "clusters": spec.get("clusters") or [],
        "cluster_selector": spec.get("cluster_selector"),
        "ticket": spec.get("ticket") or "",
        "revision": row["current_revision__number"],
        "approval": row["current_revision__approval"],
        "approval_reference": row["current_revision__approval_reference"],
        **spec_view(spec, clusters, known),
        "certificate": row["current_revision__certificate"],
        "status": [
            {
                **status,
                # The worker records the cluster's own errors here: team members read their kind (clusters.messages).
                "message": messages.for_viewer(status["message"], platform=platform, state=status["state"]),
                "updated_at": _iso(status["updated_at"]),
            }
            for status in statuses
        ],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "created_by": row["created_by"],
    }


def viewer_is_platform(context: dict[str, Any]) -> bool:
    """Whether a view goes to a platform engineer (the serializer context's request); without one, it does not."""
    request = context.get("request")
    return request is not None and is_platform(request.user)


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
