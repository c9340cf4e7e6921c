"""Shapes of the public API. A gateway service's input is checked by `services.specs` (shared with the ticketing
webhook and the YAML import); its fields are declared here for the OpenAPI schema. Domain rules live in
services.validation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from gatewayportal.exceptions import DomainError
from gatewayportal.serializers import StrictFieldsMixin
from services import specs
from services.choices import Protocol, TLSMode, TLSProtocolVersion, TrafficType
from services.models import (
    DEFAULT_GATEWAY_BUDGET_SHARE,
    DEFAULT_MAX_HOSTS_PER_GATEWAY,
    DEFAULT_MAX_SERVICES,
    GatewayService,
    GatewayServiceRevision,
    GatewayServiceStatus,
    Team,
)
from services.specs import DNS_LABEL, DOMAIN

User = get_user_model()
# Full-string matches (\Z, not $, which also matches before a trailing newline).
FULL_DNS_LABEL = r"\A[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z"
FULL_DNS_SUBDOMAIN = r"\A[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"

MAX_TEAM_NAMESPACES = 100
MAX_TEAM_DOMAINS = 100


# The quota columns are PositiveIntegerField: what Postgres stores in an integer.
QUOTA_MAX = 2**31 - 1


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


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


class TrustedIdentitySerializer(StrictFieldsMixin, serializers.Serializer):
    """A workload identity (a CI pipeline) that acts as the team: its tokens' issuer, audience and claims."""

    issuer = serializers.CharField(max_length=500, help_text="Exactly the tokens' `iss`, an https URL.")
    audience = serializers.CharField(max_length=500, help_text="Exactly one of the tokens' `aud` values.")
    claims = serializers.DictField(
        child=serializers.CharField(max_length=500),
        allow_empty=False,
        help_text="Claim name → glob (`*`, `?`, `[…]`, case-sensitive); every one must match.",
    )

    def validate_issuer(self, value: str) -> str:
        parsed = urlsplit(value)
        loopback = parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS
        if not (parsed.scheme == "https" or loopback) or not parsed.hostname or parsed.query or parsed.fragment:
            raise serializers.ValidationError(
                "Give the issuer URL exactly as tokens name it (https://…, no query); http only on loopback."
            )
        return value


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
    idp_groups = serializers.ListField(
        child=serializers.CharField(max_length=200, trim_whitespace=True),
        required=False,
        help_text="Identity-provider groups whose members belong to the team (synced at every sign-in and API call).",
    )
    trusted_identities = TrustedIdentitySerializer(
        many=True, required=False, help_text="Pipelines that act as the team with their identity tokens."
    )

    allowed_clusters = serializers.ListField(
        child=serializers.RegexField(
            FULL_DNS_LABEL, max_length=63, error_messages={"invalid": "Each cluster name must be a DNS-1123 label."}
        ),
        allow_null=True,
        required=False,
        help_text="Names of the clusters the team may target; null = every cluster. Applies to later writes.",
    )
    allowed_cluster_selector = serializers.DictField(
        child=serializers.CharField(max_length=63),
        allow_null=True,
        required=False,
        help_text="Labels a cluster must carry for the team to target it (with allowed_clusters, both apply); "
        "null = no label needed. A cluster_selector lands only on clusters the team may use.",
    )
    max_services = serializers.IntegerField(
        min_value=0,
        max_value=QUOTA_MAX,
        required=False,
        help_text=f"Quota: gateway services the team may own (default {DEFAULT_MAX_SERVICES}).",
    )
    max_hosts_per_gateway = serializers.IntegerField(
        min_value=0,
        max_value=QUOTA_MAX,
        required=False,
        help_text="Quota: hosts the team's services may list on one Gateway (one cluster and traffic type; "
        f"default {DEFAULT_MAX_HOSTS_PER_GATEWAY}).",
    )
    gateway_budget_share = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="Quota: the fraction (0-1) of a Gateway's byte budget (GATEWAY_BYTE_BUDGET, server blocks as "
        f"compact JSON) the team's blocks may take on one Gateway (default {DEFAULT_GATEWAY_BUDGET_SHARE}).",
    )
    granted_secrets = serializers.ListField(
        child=serializers.RegexField(
            FULL_DNS_SUBDOMAIN,
            max_length=253,
            error_messages={"invalid": "Each Secret name must be a DNS-1123 subdomain."},
        ),
        required=False,
        help_text="Secrets in the gateways' secret namespace that the team may name in tls_secret_ref. A Secret the "
        "portal manages for a service can never be referenced.",
    )

    class Meta:
        model = Team
        fields = [
            "slug",
            "name",
            "namespaces",
            "allowed_domains",
            "allow_wildcards",
            "members",
            "allowed_clusters",
            "allowed_cluster_selector",
            "max_services",
            "max_hosts_per_gateway",
            "gateway_budget_share",
            "granted_secrets",
            "idp_groups",
            "trusted_identities",
        ]

    def validate_idp_groups(self, value: list[str]) -> list[str]:
        for i, group in enumerate(value):
            if not group:
                raise serializers.ValidationError({i: ["A group name may not be empty."]})
        return sorted(set(value))

    def validate_trusted_identities(self, value: list[dict]) -> list[dict]:
        return [{"issuer": e["issuer"], "audience": e["audience"], "claims": dict(e["claims"])} for e in value]

    def validate_allowed_domains(self, value: list[str]) -> list[str]:
        cleaned = []
        for i, domain in enumerate(value):
            # Stored in the form hosts are compared in (services.listeners.normal_host), but a `namespace/` prefix is
            # refused by DOMAIN below rather than dropped.
            domain = domain.strip().lower().rstrip(".")
            if not DOMAIN.fullmatch(domain):
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
        # Not trimmed: a host with whitespace or a control character is refused, never quietly repaired.
        child=serializers.CharField(max_length=255, trim_whitespace=False),
        allow_empty=False,
        max_length=specs.MAX_HOSTS,
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
        # A validator, not RegexField: its "invalid" message would also answer a value that is not a string.
        child=serializers.CharField(
            max_length=63,
            validators=[
                RegexValidator(
                    specs.LABEL_NAME,
                    message="Not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and "
                    "ending with a letter or digit.",
                )
            ],
        ),
        required=False,
        allow_null=True,
        default=None,
        help_text=f"Kubernetes labels a cluster must carry; at most {specs.MAX_LABELS}.",
    )
    ticket = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")

    revision = serializers.IntegerField(read_only=True)
    approval = serializers.CharField(
        read_only=True,
        help_text="not_required | pending | approved | rejected, of the current revision. A change on a gated "
        "cluster is pending until approved, and so is leaving one (a PATCH that drops it, or a DELETE): the block "
        "stays there until the removal is approved.",
    )
    approval_reference = serializers.CharField(
        read_only=True, help_text="What a ticket quotes to approve exactly this revision (see the ticketing webhook)."
    )
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
            "approval_reference",
            "decided_by",
            "decided_at",
            "decision_comment",
            "author",
            "ticket",
            "created_at",
        ]


class DecisionSerializer(StrictFieldsMixin, serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
