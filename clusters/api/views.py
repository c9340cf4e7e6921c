"""Clusters API: reads declare, writes call `clusters.actions`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from clusters import actions, enqueue, health, selectors
from clusters.api.serializers import (
    AdoptionResultSerializer,
    AdoptSerializer,
    ClusterCheckSerializer,
    ClusterSerializer,
    GatewayServersSerializer,
    GatewayViewSerializer,
)
from clusters.filtersets import ClusterFilterSet
from gatewayportal.exceptions import DomainError
from gatewayportal.roles import IsPlatform, IsPlatformOrReadOnly, is_platform
from services.models import Team
from services.selectors import gateway_services_for_user

DRY_RUN = OpenApiParameter(
    "dry_run", OpenApiTypes.BOOL, description="Show what adoption would do and the writes it leads to; store nothing."
)


def _flag(request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def _team(slug: str | None) -> Team:
    team = Team.objects.filter(slug=slug or "").first()
    if team is None:
        raise DomainError({"team": ["Required: the slug of an existing team."]})
    return team


class ClusterViewSet(viewsets.ModelViewSet):
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilterSet
    permission_classes = [IsPlatformOrReadOnly]
    lookup_field = "name"
    lookup_value_regex = "[-a-zA-Z0-9_]+"

    def get_queryset(self):
        return selectors.cluster_list()

    def perform_create(self, serializer):
        serializer.instance = actions.cluster_create(**serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = actions.cluster_update(cluster=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        actions.cluster_delete(cluster=instance)

    @extend_schema(request=None, responses=ClusterCheckSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsPlatform])
    def check(self, request, name=None):
        """Connect now: reachability, version, Istio API version, both Gateways, and the credentials' permissions."""
        report = health.cluster_check(cluster=self.get_object())
        return Response(ClusterCheckSerializer(report).data)

    @extend_schema(
        request=None, responses={202: inline_serializer("ReconcileQueued", {"queued": serializers.ListField()})}
    )
    @action(detail=True, methods=["post"], permission_classes=[IsPlatform])
    def reconcile(self, request, name=None):
        """Enqueue a reconcile of both of the cluster's gateways."""
        cluster = self.get_object()
        for traffic_type in actions.TRAFFIC_TYPES:
            enqueue.request_reconcile(cluster_ids=[cluster.pk], traffic_type=traffic_type)
        return Response({"queued": list(actions.TRAFFIC_TYPES)}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=GatewayViewSerializer)
    @action(
        detail=True,
        methods=["get"],
        url_path=r"gateways/(?P<traffic_type>ingress|egress)",
        permission_classes=[IsPlatform],
    )
    def gateways(self, request, name=None, traffic_type=None):
        """The live Gateway, which of its servers the portal manages, and the drift between live and desired."""
        view = selectors.gateway_view(cluster=self.get_object(), traffic_type=traffic_type)
        return Response(GatewayViewSerializer(view).data)

    @extend_schema(responses=GatewayServersSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="gateways")
    def gateways_list(self, request, name=None):
        """Each Gateway's servers: for a team member its own blocks in full and the unmanaged servers' port names;
        for platform engineers every server, and the team an unmanaged one would belong to."""
        cluster = self.get_object()
        platform = is_platform(request.user)
        teams = list(Team.objects.all()) if platform else None
        own = None if platform else selectors.own_port_names(gateway_services_for_user(request.user))
        views = [
            selectors.live_servers(cluster=cluster, traffic_type=traffic_type, teams=teams, own_port_names=own)
            for traffic_type in actions.TRAFFIC_TYPES
        ]
        return Response(GatewayServersSerializer(views, many=True, context=self.get_serializer_context()).data)

    @extend_schema(request=AdoptSerializer, parameters=[DRY_RUN], responses=AdoptionResultSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsPlatform])
    def adopt(self, request, name=None):
        """Turn an unmanaged server of a live Gateway into a gateway service of a team."""
        cluster = self.get_object()
        serializer = AdoptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        wanted = actions.Adoption(
            data["gateway"], data["port_name"], _team(data["team"]), data["name"], data["namespace"]
        )
        try:
            answer = actions.gateway_servers_adopt(
                cluster=cluster, adoptions={"server": wanted}, user=request.user, dry_run=_flag(request, "dry_run")
            )
        except DomainError as exc:
            raise DomainError(exc.errors.get("server", exc.errors))
        return Response(AdoptionResultSerializer(answer).data)

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("team", OpenApiTypes.STR, required=True), DRY_RUN],
        responses=AdoptionResultSerializer,
    )
    @action(detail=True, methods=["post"], url_path="import-operator-resources", permission_classes=[IsPlatform])
    def import_operator_resources(self, request, name=None):
        """Adopt, for a team, the servers the operator's GatewayService resources on this cluster wrote."""
        cluster = self.get_object()
        answer = actions.operator_resources_import(
            cluster=cluster,
            team=_team(request.query_params.get("team")),
            user=request.user,
            dry_run=_flag(request, "dry_run"),
        )
        return Response(AdoptionResultSerializer(answer).data)
