from __future__ import annotations

from typing import Any

from rest_framework import serializers

from gatewayportal.serializers import StrictFieldsMixin
from services.models import Team
from ticketing import signatures
from ticketing.actions import DEFAULT_OVERLAP_SECONDS
from ticketing.models import SourceKind, TicketingSource

MAX_STATUSES = 50
MAX_OVERLAP_SECONDS = 30 * 24 * 60 * 60
# What Jira workflows and ServiceNow change requests usually call a decision; used when a mapping is left out.
DEFAULT_MAPPING = {
    SourceKind.JIRA: (["Approved"], ["Declined"]),
    SourceKind.SERVICENOW: (["approved"], ["rejected"]),
    SourceKind.GENERIC: ([], []),
}


class StatusListField(serializers.ListField):
    child = serializers.CharField(max_length=100, allow_blank=False)

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_STATUSES, required=False, **kwargs)


class TicketingSourceSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())
    secret = serializers.CharField(
        write_only=True,
        required=False,
        trim_whitespace=False,
        help_text="Write-only. Left out on create: generated and returned once in the create response.",
    )
    approved_statuses = StatusListField()
    rejected_statuses = StatusListField()
    require_references = serializers.BooleanField(
        required=False,
        help_text="Approve only the revisions whose `approval_reference` the delivery carries (generic: its "
        "`revisions` list; Jira/ServiceNow: the text of the description or of `reference_field`). "
        "Recommended for production.",
    )
    previous_secret_valid_until = serializers.DateTimeField(
        source="previous_secret_expires_at", read_only=True, allow_null=True
    )
    webhook_url = serializers.SerializerMethodField()

    class Meta:
        model = TicketingSource
        fields = [
            "name",
            "kind",
            "team",
            "secret",
            "approved_statuses",
            "rejected_statuses",
            "enabled",
            "require_references",
            "reference_field",
            "webhook_url",
            "previous_secret_valid_until",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def get_webhook_url(self, source: TicketingSource) -> str:
        path = f"/api/v1/webhooks/ticketing/{source.name}/"
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def validate_kind(self, kind: str) -> str:
        if self.instance is not None and kind != self.instance.kind:
            raise serializers.ValidationError("The kind of a source cannot change; create a new source instead.")
        return kind

    def validate_secret(self, secret: str) -> str:
        if self.instance is not None:
            raise serializers.ValidationError(
                "Change the secret with POST /api/v1/ticketing-sources/{name}/rotate-secret/, "
                "which keeps the old one valid for an overlap window."
            )
        return secret

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind = attrs.get("kind") or self.instance.kind
        if "secret" in attrs and (problem := signatures.secret_problem(kind, attrs["secret"])):
            raise serializers.ValidationError({"secret": [problem]})
        if self.instance is None:
            approved, rejected = DEFAULT_MAPPING[kind]
            attrs.setdefault("approved_statuses", approved)
            attrs.setdefault("rejected_statuses", rejected)
        approved = attrs.get("approved_statuses", getattr(self.instance, "approved_statuses", []))
        rejected = attrs.get("rejected_statuses", getattr(self.instance, "rejected_statuses", []))
        if attrs.get("reference_field") and kind == SourceKind.GENERIC:
            raise serializers.ValidationError(
                {
                    "reference_field": [
                        "Only for jira and servicenow; a generic delivery lists references in `revisions`."
                    ]
                }
            )
        both = {s.casefold() for s in approved} & {s.casefold() for s in rejected}
        if both:
            raise serializers.ValidationError(
                {"rejected_statuses": [f"A status cannot mean both approved and rejected: {', '.join(sorted(both))}."]}
            )
        return attrs


class TicketingSourceCreatedSerializer(TicketingSourceSerializer):
    """The create answer: the only one that carries the secret."""

    secret = serializers.CharField(read_only=True, help_text="Shown only in this response; store it in the sender.")


class RotateSecretSerializer(StrictFieldsMixin, serializers.Serializer):
    secret = serializers.CharField(required=False, trim_whitespace=False, help_text="Left out: one is generated.")
    overlap_seconds = serializers.IntegerField(
        required=False,
        default=DEFAULT_OVERLAP_SECONDS,
        min_value=0,
        max_value=MAX_OVERLAP_SECONDS,
        help_text="How long the previous secret stays valid; 0 ends it at once.",
    )

    def validate_secret(self, secret: str) -> str:
        problem = signatures.secret_problem(self.context["source"].kind, secret)
        if problem:
            raise serializers.ValidationError(problem)
        return secret


class SecretShownOnceSerializer(serializers.Serializer):
    """The answer of rotate-secret: the new secret, shown this once."""

    secret = serializers.CharField()
    previous_secret_valid_until = serializers.DateTimeField(allow_null=True)


class WebhookAnswerSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["approved", "rejected", "created", "ignored", "duplicate"])
    ticket = serializers.CharField()
    delivery_id = serializers.CharField()
    services = serializers.ListField(child=serializers.UUIDField(), required=False)
    revisions = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="`{service, revision}` of each revision decided."
    )
    refused = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="`{service, revision, reason}` of each pending revision left out because the delivery does not "
        "carry its approval reference.",
    )
    unmatched_references = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="References the delivery carries that name no pending revision linked to its ticket.",
    )
    errors = serializers.DictField(required=False)
    reason = serializers.CharField(required=False)
