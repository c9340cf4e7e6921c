"""Shapes of the clusters API. Credentials are write-only; teams see no connection details at all."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from clusters import messages
from clusters.models import Cluster
from gatewayportal.exceptions import DomainError
from gatewayportal.roles import is_platform
from services import specs

# Connection details only platform engineers see (the secrets themselves are never returned).
PLATFORM_ONLY_FIELDS = ("api_server", "ca_cert")


def viewer_is_platform(context: dict[str, Any]) -> bool:
    """Whether the answer goes to a platform engineer; without a request, it does not (fail closed)."""
    request = context.get("request")
    return request is not None and is_platform(request.user)


class ClusterErrorField(serializers.CharField):
    """Text that is the cluster's own error (it names the API server): whole for platform engineers, its kind
    (`unreachable`, `TLS error`, `unauthorized`) for everyone else (`clusters.messages`)."""

    def to_representation(self, value: Any) -> str:
        return messages.for_viewer(str(value), platform=viewer_is_platform(self.context))


class HealthSerializer(serializers.Serializer):
    reachable = serializers.BooleanField(allow_null=True)
    checked_at = serializers.DateTimeField(allow_null=True)
    message = serializers.CharField()
    istio_api_version = serializers.CharField()


class ClusterSerializer(serializers.ModelSerializer):
    token = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=True)
    kubeconfig = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        style={"base_template": "textarea.html"},
    )
    labels = serializers.DictField(
        child=serializers.CharField(max_length=63),
        required=False,
        help_text=f"Kubernetes labels (label syntax); at most {specs.MAX_LABELS}.",
    )
    health = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        fields = [
            "name",
            "api_server",
            "ca_cert",
            "token",
            "kubeconfig",
            "labels",
            "ingress_gateway",
            "egress_gateway",
            "ingress_secret_namespace",
            "egress_secret_namespace",
            "namespace_scoped_hosts",
            "requires_approval",
            "enabled",
            "health",
        ]
        extra_kwargs = {"api_server": {"required": False}, "ca_cert": {"required": False}}

    def get_health(self, cluster: Cluster) -> dict[str, Any]:
        return {
            "reachable": cluster.reachable,
            "checked_at": cluster.checked_at,
            "message": messages.for_viewer(cluster.health_message, platform=viewer_is_platform(self.context)),
            "istio_api_version": cluster.istio_api_version,
        }

    def validate_labels(self, labels: dict[str, str]) -> dict[str, str]:
        try:
            return specs.check_labels(labels)
        except DomainError as exc:
            raise serializers.ValidationError(exc.errors)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        creating = self.instance is None
        if creating and not attrs.get("kubeconfig") and not attrs.get("api_server"):
            raise serializers.ValidationError(
                {"api_server": ["give api_server (with token and ca_cert) or a kubeconfig"]}
            )
        if attrs.get("kubeconfig") and (attrs.get("api_server") or attrs.get("token")):
            raise serializers.ValidationError(
                {"kubeconfig": ["give either a kubeconfig or api_server/ca_cert/token, not both"]}
            )
        return attrs

    def to_representation(self, instance: Cluster) -> dict[str, Any]:
        data = super().to_representation(instance)
        if not viewer_is_platform(self.context):
            for name in PLATFORM_ONLY_FIELDS:
                data.pop(name, None)
        return data


class PermissionReviewSerializer(serializers.Serializer):
    verb = serializers.CharField()
    group = serializers.CharField(allow_blank=True)
    resource = serializers.CharField()
    namespace = serializers.CharField(allow_null=True)
    allowed = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True)


class GatewayPresenceSerializer(serializers.Serializer):
    ref = serializers.CharField()
    exists = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)


class ClusterCheckSerializer(serializers.Serializer):
    cluster = serializers.CharField()
    ok = serializers.BooleanField()
    reachable = serializers.BooleanField()
    version = serializers.CharField(allow_blank=True)
    istio_api_version = serializers.CharField(allow_blank=True)
    gateways = serializers.DictField(child=GatewayPresenceSerializer())
    permissions = PermissionReviewSerializer(many=True)
    message = serializers.CharField(allow_blank=True)


class ServersDiffSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    changed = serializers.ListField(child=serializers.CharField())


class LiveServerSerializer(serializers.Serializer):
    port_name = serializers.CharField(allow_blank=True)
    managed = serializers.BooleanField()
    team = serializers.CharField(
        required=False,
        help_text="Platform engineers only, for an unmanaged server: the team whose domains its "
        "hosts fall in, or 'none'.",
    )
    server = serializers.JSONField(required=False, help_text="The live server block.")


class GatewayServersSerializer(serializers.Serializer):
    traffic_type = serializers.CharField()
    gateway = serializers.CharField()
    reachable = serializers.BooleanField()
    message = ClusterErrorField(allow_blank=True)
    servers = LiveServerSerializer(many=True)


class AdoptSerializer(serializers.Serializer):
    gateway = serializers.ChoiceField(["ingress", "egress"])
    port_name = serializers.CharField(max_length=253)
    team = serializers.SlugField(max_length=63)
    name = serializers.RegexField(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace = serializers.RegexField(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)


class AdoptionResultSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    results = serializers.ListField(child=serializers.DictField())
    writes = serializers.DictField(
        child=serializers.DictField(),
        help_text="Per gateway: gateway_writes and secret_writes the next reconcile makes, servers diff, rejected.",
    )


class GatewayViewSerializer(serializers.Serializer):
    cluster = serializers.CharField()
    traffic_type = serializers.CharField()
    gateway = serializers.CharField()
    reachable = serializers.BooleanField()
    message = serializers.CharField(allow_blank=True)
    live = serializers.JSONField(allow_null=True)
    managed_servers = serializers.ListField(child=serializers.CharField())
    unmanaged_servers = serializers.ListField(child=serializers.CharField())
    servers = LiveServerSerializer(many=True)
    desired_servers = serializers.ListField(child=serializers.CharField())
    drift = ServersDiffSerializer()
    in_sync = serializers.BooleanField()
    last_reconciled_at = serializers.DateTimeField(allow_null=True)
    last_result = serializers.CharField(allow_blank=True)
    last_message = serializers.CharField(allow_blank=True)
