from __future__ import annotations

import re

from django.db import transaction
from django.http import HttpResponse
from django.utils.http import parse_etags, quote_etag
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from audit.selectors import object_history
from audit.serializers import AuditEventSerializer
from gatewayportal.exceptions import DomainError
from gatewayportal.parsers import JSONParser
from gatewayportal.roles import IsPlatform, IsPlatformOrReadOnly, is_platform
from services import actions, applying, importing, selectors
from services.api import listcache
from services.api.parsers import YAMLAliasParser, YAMLTextParser
from services.api.serializers import (
    DecisionSerializer,
    GatewayServiceSerializer,
    RevisionSerializer,
    TeamSerializer,
)
from services.filtersets import GatewayServiceFilterSet
from services.importing import import_documents
from services.models import GatewayService, Team

DRY_RUN = OpenApiParameter(
    "dry_run", OpenApiTypes.BOOL, description="Validate and show the would-be object and live diff; store nothing."
)
TEAM = OpenApiParameter("team", OpenApiTypes.STR, description="Team slug the services belong to.")
CLUSTERS = OpenApiParameter(
    "clusters", OpenApiTypes.STR, description="Comma-separated target cluster names for the operator's documents."
)
ApplyResults = inline_serializer(
    "ApplyResult",
    {
        "index": serializers.IntegerField(allow_null=True, help_text="The document's index; null for a pruned one."),
        "name": serializers.CharField(),
        "namespace": serializers.CharField(),
        "action": serializers.ChoiceField(["created", "updated", "unchanged", "deleted"]),
        "revision": serializers.IntegerField(allow_null=True),
        "diff": serializers.DictField(child=serializers.ListField(), help_text="field -> [before, after]"),
    },
    many=True,
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


IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    description=(
        'The ETag last read (`"<revision>"`), several separated by commas, or `*`. When the service has moved '
        "to another revision the request answers 412 and changes nothing. Weak tags (`W/…`) never match."
    ),
)
ETAG = OpenApiParameter(
    "ETag",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    response=[200, 201],
    description='The service\'s current revision as a strong entity tag, e.g. `"3"`; send it back in `If-Match`.',
)
PRECONDITION_FAILED = OpenApiResponse(description="If-Match names another revision than the current one.")


def _flag(request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


REVISION_TAG = re.compile(r'"([0-9]{1,18})"')  # a strong tag naming a revision; weak tags never match If-Match


class RevisionETagMixin:
    """Optimistic concurrency: an answer about one service carries `ETag: "<revision>"`, and PUT, PATCH and DELETE
    pass the revisions `If-Match` names to the action, which compares them under the service's row lock."""

    @staticmethod
    def etag(service) -> str:
        return quote_etag(str(service.current_revision.number))

    def expected_revisions(self) -> frozenset[int] | None:
        """None without `If-Match` or with `*`; else the revisions of its strong tags (weak ones never match)."""
        header = self.request.headers.get("If-Match")
        if header is None:
            return None
        tags = parse_etags(header)
        if "*" in tags:
            return None
        return frozenset(int(match[1]) for tag in tags if (match := REVISION_TAG.fullmatch(tag)))

    def with_etag(self, response: Response, service) -> Response:
        response["ETag"] = self.etag(service)
        return response


class GatewayServiceViewSet(
    RevisionETagMixin,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = GatewayServiceSerializer
    filterset_class = GatewayServiceFilterSet
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        return selectors.gateway_services_for_user(self.request.user).order_by("namespace", "name")

    def list(self, request, *args, **kwargs):
        # A page already rendered for these versions of what it shows (services.api.listcache), if any.
        cache_key = listcache.key(request)
        cached = listcache.get(cache_key)
        if cached is not None:
            return cached
        # Plain rows, not model instances: building five models per service was most of a page's time.
        # For the teams the key was read for, if any: the page then shows what its key says, whatever membership
        # changes meanwhile.
        teams = cache_key.teams if cache_key is not None else None
        queryset = selectors.visible_services(request.user, teams=teams).order_by("namespace", "name")
        filtered = bool(set(request.query_params) - listcache.PAGINATION)
        if filtered:
            queryset = self.filter_queryset(queryset)  # building the filter form costs as much as the page
        rows = selectors.gateway_service_rows(queryset, every_one_of=None if filtered else request.user, teams=teams)
        page = self.paginate_queryset(rows)
        views = selectors.gateway_service_list_views(
            list(rows) if page is None else page, self.get_serializer_context()
        )
        response = Response(views) if page is None else self.get_paginated_response(views)
        return listcache.store(cache_key, request, response.data, self.get_renderer_context()) or response

    def _team_for(self, slug: str | None) -> Team:
        teams = selectors.teams_by_slug(self.request.user)
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
        context = self.get_serializer_context()
        # A create's answer reuses the clusters its checks read (actions.gateway_service_create).
        clusters = getattr(service, "clusters_by_name", None)
        if clusters is not None:
            context["clusters_by_name"] = clusters
        body = selectors.gateway_service_view(service, context)
        body["warnings"] = warnings
        return self.with_etag(Response(body, status=code), service)

    @extend_schema(parameters=[ETAG])
    def retrieve(self, request, *args, **kwargs):
        service = self.get_object()
        body = selectors.gateway_service_view(service, self.get_serializer_context())
        return self.with_etag(Response(body), service)

    @extend_schema(parameters=[DRY_RUN, ETAG], responses={201: GatewayServiceSerializer, 200: GatewayServiceSerializer})
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

    @extend_schema(
        parameters=[DRY_RUN, IF_MATCH, ETAG], responses={200: GatewayServiceSerializer, 412: PRECONDITION_FAILED}
    )
    def update(self, request, *args, **kwargs):
        return self._update(request, partial=False)

    @extend_schema(
        parameters=[DRY_RUN, IF_MATCH, ETAG], responses={200: GatewayServiceSerializer, 412: PRECONDITION_FAILED}
    )
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
        expected = self.expected_revisions()
        if _flag(request, "dry_run"):
            return Response(
                self._preview(team=service.team, data=data, service=service, partial=partial, expected=expected)
            )
        service, warnings = actions.gateway_service_update(
            service=service,
            data=data,
            user=request.user,
            is_platform=is_platform(request.user),
            partial=partial,
            expected_revisions=expected,
        )
        service = self.get_queryset().get(pk=service.pk)
        return self._respond(service, warnings, status.HTTP_200_OK)

    def _preview(self, *, team, data, service=None, partial=False, expected=None) -> dict:
        """Run every check inside a transaction that is always rolled back, then describe the result."""
        from clusters import messages
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
                    expected_revisions=expected,
                )
            created = self.get_queryset().get(pk=created.pk)
            body = selectors.gateway_service_view(created, self.get_serializer_context())
            server = body["server_block"]
            targets = [s.cluster for s in created.statuses.select_related("cluster").order_by("cluster__name")]
            transaction.set_rollback(True)
        if service is None:
            body["id"] = None
        body["warnings"] = warnings
        body["dry_run"] = True
        body["diff"] = [
            live_diff(cluster=cluster, traffic_type=created.traffic_type, server=server, service_id=str(created.pk))
            for cluster in targets
        ]
        platform = is_platform(self.request.user)
        for diff in body["diff"]:
            diff["message"] = messages.for_viewer(diff["message"], platform=platform)
        return body

    @extend_schema(
        parameters=[IF_MATCH],
        responses={202: None, 412: PRECONDITION_FAILED},
        description="Removes the service from every cluster, then the object. Where its approved revision runs on a "
        "cluster that requires approval, the removal is a pending revision (no target clusters): the block leaves "
        "the other clusters at once and stays on the gated ones until `approve/` approves the removal.",
    )
    def destroy(self, request, *args, **kwargs):
        actions.gateway_service_delete(service=self.get_object(), expected_revisions=self.expected_revisions())
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

    @extend_schema(
        request=DecisionSerializer,
        parameters=[IF_MATCH, ETAG],
        responses={200: GatewayServiceSerializer, 412: PRECONDITION_FAILED},
        description="Approves the current revision, including a pending removal (after which the service goes). "
        "Refused (400) when, on a gated cluster, it would clash with what runs or is approved to run there "
        "(pending revisions hold no claim, so two of them may clash: the second approval is refused).",
    )
    @action(detail=True, methods=["post"], permission_classes=[IsPlatform])
    def approve(self, request, pk=None):
        return self._decide(request, actions.revision_approve)

    @extend_schema(
        request=DecisionSerializer,
        parameters=[IF_MATCH, ETAG],
        responses={200: GatewayServiceSerializer, 412: PRECONDITION_FAILED},
    )
    @action(detail=True, methods=["post"], permission_classes=[IsPlatform])
    def reject(self, request, pk=None):
        return self._decide(request, actions.revision_reject)

    def _decide(self, request, decide):
        service = self.get_object()
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The revision is pinned here: with If-Match, it is the one the approver reviewed or nothing is decided.
        revision = service.current_revision
        actions.check_expected_revision(revision, self.expected_revisions())
        decide(revision=revision, comment=serializer.validated_data["comment"])
        decided = self.get_queryset().filter(pk=service.pk).first()
        if decided is None:  # an approved removal: the service is already gone from every cluster
            return Response({"id": str(service.pk), "approval": "approved", "removed": True})
        return self._respond(decided, [], status.HTTP_200_OK)

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

    @extend_schema(
        request={
            "application/yaml": OpenApiTypes.STR,
            "application/json": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
        },
        parameters=[
            TEAM,
            OpenApiParameter(
                "apply_set",
                OpenApiTypes.STR,
                required=True,
                description="Name of the set these documents form; prune removes only services of this set.",
            ),
            CLUSTERS,
            OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="Answer the same plan and store nothing."),
            OpenApiParameter(
                "prune",
                OpenApiTypes.BOOL,
                description="Delete the team's services of this apply set that the documents no longer name.",
            ),
        ],
        responses={200: inline_serializer("ApplyResponse", {"results": ApplyResults})},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="apply",
        parser_classes=[YAMLTextParser, YAMLAliasParser, JSONParser],
    )
    def apply(self, request):
        """Declarative, all-or-nothing apply of YAML or JSON documents (the portal's format or the operator's)."""
        team = self._team_for(request.query_params.get("team"))
        clusters = [c.strip() for c in request.query_params.get("clusters", "").split(",") if c.strip()]
        if isinstance(request.data, str):
            documents = importing.parse_documents(request.data)
        else:
            data = request.data
            documents = importing.expand_documents(data if isinstance(data, list) else [data])
        results = applying.apply_documents(
            documents=documents,
            team=team,
            apply_set=request.query_params.get("apply_set"),
            clusters=clusters,
            user=request.user,
            is_platform=is_platform(request.user),
            prune=_flag(request, "prune"),
            dry_run=_flag(request, "dry_run"),
        )
        return Response({"results": results})

    @extend_schema(
        parameters=[TEAM],
        responses={
            (200, "application/yaml"): {
                "type": "object",
                "description": "A `kind: List` whose items are portal-format GatewayService documents.",
                "properties": {
                    "apiVersion": {"type": "string", "enum": ["v1"]},
                    "kind": {"type": "string", "enum": ["List"]},
                    "items": {"type": "array", "items": {"type": "object"}},
                },
                "required": ["apiVersion", "kind", "items"],
            }
        },
    )
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request):
        """The team's services as portal-format YAML documents, ready to apply (certificates without keys)."""
        team = self._team_for(request.query_params.get("team"))
        services = (
            GatewayService.objects.filter(team=team, deleting_at__isnull=True)
            .select_related("current_revision")
            .order_by("namespace", "name")
        )
        return HttpResponse(applying.export_yaml(list(services)), content_type="application/yaml")
