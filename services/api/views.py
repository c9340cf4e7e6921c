from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from audit.selectors import object_history
from audit.serializers import AuditEventSerializer
from gatewayportal.exceptions import DomainError
from gatewayportal.roles import IsPlatform, IsPlatformOrReadOnly, is_platform
from services import actions, selectors
from services.api.parsers import YAMLAliasParser, YAMLTextParser
from services.api.serializers import (
    DecisionSerializer,
    GatewayServiceSerializer,
    RevisionSerializer,
    TeamSerializer,
)
from services.filtersets import GatewayServiceFilterSet
from services.importing import import_documents
from services.models import Team

DRY_RUN = OpenApiParameter(
    "dry_run", OpenApiTypes.BOOL, description="Validate and show the would-be object and live diff; store nothing."
)


class TeamViewSet(viewsets.ModelViewSet):
    serializer_class = TeamSerializer
    permission_classes = [IsPlatformOrReadOnly]
    lookup_field = "slug"

    def get_queryset(self):
        return selectors.teams_for_user(self.request.user).prefetch_related("members")

    def perform_create(self, serializer):
        serializer.instance = actions.team_save(data=dict(serializer.validated_data))

    def perform_update(self, serializer):
        serializer.instance = actions.team_save(data=dict(serializer.validated_data), team=serializer.instance)

    def perform_destroy(self, instance):
        actions.team_delete(team=instance)


def _flag(request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


class GatewayServiceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = GatewayServiceSerializer
    filterset_class = GatewayServiceFilterSet
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        return selectors.gateway_services_for_user(self.request.user).order_by("namespace", "name")

    def _team_for(self, slug: str | None) -> Team:
        teams = list(selectors.teams_for_user(self.request.user).order_by("slug"))
        if slug:
            for team in teams:
                if team.slug == slug:
                    return team
            names = ", ".join(t.slug for t in teams) or "none"
            raise DomainError({"team": [f"Unknown team '{slug}'. Your teams: {names}."]})
        if len(teams) == 1 and not is_platform(self.request.user):
            return teams[0]
        names = ", ".join(t.slug for t in teams) or "none"
        raise DomainError(
            {"team": [f"This field is required when you are not in exactly one team. Your teams: {names}."]}
        )

    def _respond(self, service, warnings, code):
        body = selectors.gateway_service_view(service, self.get_serializer_context())
        body["warnings"] = warnings
        return Response(body, status=code)

    @extend_schema(parameters=[DRY_RUN], responses={201: GatewayServiceSerializer, 200: GatewayServiceSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        team = self._team_for(data.pop("team", None))
        if _flag(request, "dry_run"):
            return Response(self._preview(team=team, data=data))
        service, warnings = actions.gateway_service_create(
            team=team, data=data, user=request.user, is_platform=is_platform(request.user)
        )
        return self._respond(service, warnings, status.HTTP_201_CREATED)

    @extend_schema(parameters=[DRY_RUN])
    def update(self, request, *args, **kwargs):
        return self._update(request, partial=False)

    @extend_schema(parameters=[DRY_RUN])
    def partial_update(self, request, *args, **kwargs):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool):
        service = self.get_object()
        serializer = self.get_serializer(service, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        team_slug = data.pop("team", None)
        if team_slug and team_slug != service.team.slug:
            raise DomainError({"team": ["'team' cannot be changed; create a new gateway service instead."]})
        if _flag(request, "dry_run"):
            return Response(self._preview(team=service.team, data=data, service=service, partial=partial))
        service, warnings = actions.gateway_service_update(
            service=service, data=data, user=request.user, is_platform=is_platform(request.user), partial=partial
        )
        service = self.get_queryset().get(pk=service.pk)
        return self._respond(service, warnings, status.HTTP_200_OK)

    def _preview(self, *, team, data, service=None, partial=False) -> dict:
        """Run every check inside a transaction that is always rolled back, then describe the result."""
        from clusters.health import summary_for_teams
        from clusters.selectors import live_diff

        with transaction.atomic():
            if service is None:
                created, warnings = actions.gateway_service_create(
                    team=team, data=data, user=self.request.user, is_platform=is_platform(self.request.user)
                )
            else:
                created, warnings = actions.gateway_service_update(
                    service=service,
                    data=data,
                    user=self.request.user,
                    is_platform=is_platform(self.request.user),
                    partial=partial,
                )
            created = self.get_queryset().get(pk=created.pk)
            body = selectors.gateway_service_view(created, self.get_serializer_context())
            server = body["server_block"]
            targets = [s.cluster for s in created.statuses.all()]
            transaction.set_rollback(True)
        if service is None:
            body["id"] = None
        body["warnings"] = warnings
        body["dry_run"] = True
        body["diff"] = [
            live_diff(cluster=cluster, traffic_type=created.traffic_type, server=server, service_id=str(created.pk))
            for cluster in targets
        ]
        if not is_platform(self.request.user):
            for diff in body["diff"]:
                diff["message"] = summary_for_teams(diff["message"])
        return body

    @extend_schema(responses={202: None})
    def destroy(self, request, *args, **kwargs):
        actions.gateway_service_delete(service=self.get_object())
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses=inline_serializer(
            "GatewayServiceHistory",
            {
                "revisions": RevisionSerializer(many=True),
                "audit_events": serializers.ListField(child=serializers.DictField()),
            },
        )
    )
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        service = self.get_object()
        events = object_history(object_type="gateway_service", object_id=str(service.pk))
        return Response(
            {
                "revisions": RevisionSerializer(service.revisions.order_by("number"), many=True).data,
                "audit_events": AuditEventSerializer(events, many=True).data,
            }
        )

    @extend_schema(
        responses=inline_serializer("ApprovalDiff", {"results": serializers.ListField(child=serializers.DictField())})
    )
    @action(detail=True, methods=["get"], url_path="approval-diff", permission_classes=[IsPlatform])
    def approval_diff(self, request, pk=None):
        """For approvers: the live diff the pending revision would make on each gated cluster."""
        return Response({"results": selectors.approval_diff(self.get_object())})

    @extend_schema(request=DecisionSerializer, responses=GatewayServiceSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsPlatform])
    def approve(self, request, pk=None):
        return self._decide(request, actions.revision_approve)

    @extend_schema(request=DecisionSerializer, responses=GatewayServiceSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsPlatform])
    def reject(self, request, pk=None):
        return self._decide(request, actions.revision_reject)

    def _decide(self, request, decide):
        service = self.get_object()
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decide(revision=service.current_revision, comment=serializer.validated_data["comment"])
        return self._respond(self.get_queryset().get(pk=service.pk), [], status.HTTP_200_OK)

    @extend_schema(
        request={"application/yaml": OpenApiTypes.STR},
        parameters=[
            OpenApiParameter("team", OpenApiTypes.STR, description="Team slug the services belong to."),
            OpenApiParameter("clusters", OpenApiTypes.STR, description="Comma-separated target cluster names."),
        ],
        responses={201: GatewayServiceSerializer(many=True)},
    )
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[YAMLTextParser, YAMLAliasParser])
    def import_(self, request):
        team = self._team_for(request.query_params.get("team"))
        clusters = [c.strip() for c in request.query_params.get("clusters", "").split(",") if c.strip()]
        if not isinstance(request.data, str):
            raise ValidationError({"non_field_errors": ["Send YAML documents with Content-Type: application/yaml."]})
        services = import_documents(
            text=request.data, team=team, clusters=clusters, user=request.user, is_platform=is_platform(request.user)
        )
        context = self.get_serializer_context()
        return Response(
            [selectors.gateway_service_view(self.get_queryset().get(pk=s.pk), context) for s in services],
            status=status.HTTP_201_CREATED,
        )
