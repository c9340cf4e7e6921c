"""Clusters API: reads declare, writes call `clusters.actions`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from clusters import actions, enqueue, health, selectors
from clusters.api.serializers import ClusterCheckSerializer, ClusterSerializer, GatewayViewSerializer
from clusters.filtersets import ClusterFilterSet
from gatewayportal.roles import IsPlatform, IsPlatformOrReadOnly


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
