"""Shapes of the public API. A gateway service's input is checked by `services.specs` (shared with the ticketing
webhook and the YAML import); its fields are declared here for the OpenAPI schema. Domain rules live in
services.validation."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from gatewayportal.exceptions import DomainError
from services import specs
from services.choices import Protocol, TLSMode, TLSProtocolVersion, TrafficType
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team
from services.specs import DNS_LABEL, DOMAIN

User = get_user_model()
MAX_TEAM_NAMESPACES = 100
MAX_TEAM_DOMAINS = 100


class StrictFieldsMixin:
    """Unknown fields are refused, not silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            known = {name for name, field in self.fields.items() if not field.read_only}
            read_only = {name for name, field in self.fields.items() if field.read_only}
            unknown = sorted(set(data) - known - read_only)
            if unknown:
                raise serializers.ValidationError(
                    {name: [f"Unknown field. Accepted fields: {', '.join(sorted(known))}."] for name in unknown}
                )
        return super().to_internal_value(data)


class UpperChoiceField(serializers.ChoiceField):
    """A choice accepted in any case, stored and shown in its canonical case."""

    def __init__(self, choices, canonical=str.upper, **kwargs):
        self.canonical = canonical
        super().__init__(choices, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = self.canonical(data.strip())
        if data == "" and self.allow_blank:
            return ""
        if not isinstance(data, str) or data not in self.choices:  # a list or object is unhashable
            self.fail("invalid_choice", input=data)
        return data

    default_error_messages = {
        "invalid_choice": '"{input}" is not accepted. Accepted values: ' + "{choices}, in any case."
    }

    def fail(self, key, **kwargs):
        if key == "invalid_choice":
            kwargs["choices"] = ", ".join(self.choices)
        super().fail(key, **kwargs)


class TeamSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    slug = serializers.RegexField(
        DNS_LABEL,
        max_length=63,
        error_messages={"invalid": "Use a DNS label: lower-case letters, digits and '-'."},
        # Declared fields lose the model's unique check: without it a taken slug was an IntegrityError (500).
        validators=[UniqueValidator(Team.objects.all(), message="A team with this slug already exists.")],
    )
    namespaces = serializers.ListField(
        child=serializers.RegexField(
            DNS_LABEL, max_length=63, error_messages={"invalid": "Each namespace must be a DNS-1123 label."}
        ),
        allow_empty=False,
        max_length=MAX_TEAM_NAMESPACES,
    )
    allowed_domains = serializers.ListField(
        child=serializers.CharField(max_length=253), allow_empty=True, max_length=MAX_TEAM_DOMAINS
    )
    members = serializers.SlugRelatedField(
        many=True, slug_field="username", queryset=User.objects.all(), required=False
    )

    class Meta:
        model = Team
        fields = ["slug", "name", "namespaces", "allowed_domains", "allow_wildcards", "members"]

    def validate_allowed_domains(self, value: list[str]) -> list[str]:
        cleaned = []
        for i, domain in enumerate(value):
            domain = domain.strip().lower().rstrip(".")
            if not DOMAIN.match(domain):
                raise serializers.ValidationError(
                    {
                        i: [
                            f"'{domain}' is not a DNS domain; give it without a wildcard "
                            "(allow_wildcards enables *.domain)."
                        ]
                    }
                )
            cleaned.append(domain)
        return cleaned


class TLSSecretSerializer(StrictFieldsMixin, serializers.Serializer):
    cert = serializers.CharField(trim_whitespace=False, help_text="PEM chain (leaf first) or base64 of PEM.")
    key = serializers.CharField(write_only=True, trim_whitespace=False, help_text="PEM private key; write-only.")
    ca_cert = serializers.CharField(
        required=False, allow_null=True, trim_whitespace=False, help_text="CA bundle for MUTUAL."
    )


class TLSSecretRefSerializer(StrictFieldsMixin, serializers.Serializer):
    secret_name = serializers.RegexField(
        specs.SECRET_NAME,
        max_length=253,
        error_messages={"invalid": "A Kubernetes secret name: lower-case letters, digits, '-' and '.'."},
    )


class TLSSecretPathSerializer(StrictFieldsMixin, serializers.Serializer):
    cert_path = serializers.RegexField(specs.ABSOLUTE_PATH, error_messages={"invalid": "An absolute file path."})
    key_path = serializers.RegexField(specs.ABSOLUTE_PATH, error_messages={"invalid": "An absolute file path."})
    ca_cert_path = serializers.RegexField(
        specs.ABSOLUTE_PATH, required=False, allow_null=True, error_messages={"invalid": "An absolute file path."}
    )


class TLSOptionsSerializer(StrictFieldsMixin, serializers.Serializer):
    tls_secret = TLSSecretSerializer(required=False)
    tls_secret_ref = TLSSecretRefSerializer(required=False)
    tls_secret_path = TLSSecretPathSerializer(required=False)


class StatusSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster.name")

    class Meta:
        model = GatewayServiceStatus
        fields = ["cluster", "traffic_type", "state", "revision", "message", "updated_at"]


class GatewayServiceSerializer(serializers.Serializer):
    """The gateway-service resource: input shape plus read-only state.

    The input is checked by `services.specs.parse`; the writable fields below describe it for the schema
    (a test keeps both in step).
    """

    id = serializers.UUIDField(read_only=True)
    name = serializers.RegexField(
        DNS_LABEL,
        max_length=63,
        error_messages={"invalid": "Use a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters."},
    )
    team = serializers.SlugField(required=False, help_text="Team slug; may be omitted when the caller has one team.")
    namespace = serializers.CharField(max_length=63)
    hosts = serializers.ListField(
        child=serializers.CharField(max_length=255), allow_empty=False, max_length=specs.MAX_HOSTS
    )
    port = serializers.IntegerField(
        error_messages={"invalid": "A port number between 1 and 65535."},
    )
    protocol = UpperChoiceField(Protocol.values)
    mode = UpperChoiceField(TLSMode.values, required=False, allow_null=True)
    traffic_type = UpperChoiceField(TrafficType.values, canonical=str.lower)
    tls_options = TLSOptionsSerializer(required=False, allow_null=True)
    https_redirect = serializers.BooleanField(required=False, default=False)
    min_protocol_version = UpperChoiceField(TLSProtocolVersion.values, required=False, allow_null=True)
    max_protocol_version = UpperChoiceField(TLSProtocolVersion.values, required=False, allow_null=True)
    clusters = serializers.ListField(
        child=serializers.CharField(max_length=63),
        required=False,
        default=list,
        max_length=specs.MAX_CLUSTERS,
        help_text=f"Cluster names; duplicates are dropped; at most {specs.MAX_CLUSTERS}.",
    )
    cluster_selector = serializers.DictField(
        child=serializers.RegexField(
            specs.LABEL_NAME,
            max_length=63,
            error_messages={
                "invalid": "Not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and "
                "ending with a letter or digit."
            },
        ),
        required=False,
        allow_null=True,
        default=None,
        help_text=f"Kubernetes labels a cluster must carry; at most {specs.MAX_LABELS}.",
    )
    ticket = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    revision = serializers.IntegerField(read_only=True)
    approval = serializers.CharField(read_only=True)
    server_block = serializers.JSONField(read_only=True)
    credential_name = serializers.CharField(read_only=True, allow_null=True)
    certificate = serializers.JSONField(read_only=True, allow_null=True)
    status = StatusSerializer(many=True, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    created_by = serializers.CharField(read_only=True)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        try:
            return specs.parse(data, partial=self.partial)
        except DomainError as exc:
            raise serializers.ValidationError(exc.errors)

    def to_representation(self, instance: GatewayService | dict) -> dict[str, Any]:
        from services.selectors import gateway_service_view

        view = instance if isinstance(instance, dict) else gateway_service_view(instance, self.context)
        return view


class RevisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = GatewayServiceRevision
        fields = [
            "number",
            "spec",
            "certificate",
            "approval",
            "decided_by",
            "decided_at",
            "decision_comment",
            "author",
            "ticket",
            "created_at",
        ]


class DecisionSerializer(StrictFieldsMixin, serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
