from rest_framework import serializers

from audit.reports import GROUP_BY
from audit.serializers import AuditEventSerializer

__all__ = ["AuditEventSerializer"]


class ChangesReportQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Inclusive, ISO 8601.")
    until = serializers.DateTimeField(required=False, help_text="Exclusive, ISO 8601.")
    group_by = serializers.ChoiceField(
        choices=GROUP_BY,
        default="team",
        error_messages={"invalid_choice": f'"{{input}}" cannot be grouped by; accepted: {", ".join(GROUP_BY)}.'},
    )

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["until must be later than since."]})
        return attrs


class ChangesReportSerializer(serializers.Serializer):
    since = serializers.DateTimeField(allow_null=True)
    until = serializers.DateTimeField(allow_null=True)
    group_by = serializers.CharField()
    total = serializers.IntegerField()
    results = serializers.ListField(child=serializers.DictField())


class CertificatesQuerySerializer(serializers.Serializer):
    expiring_within_days = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=36500,
        help_text="Only certificates that expire within this many days (already expired ones included).",
        error_messages={"invalid": "Enter a whole number of days (0 to 36500)."},
    )


class CertificateSerializer(serializers.Serializer):
    service = serializers.UUIDField()
    team = serializers.CharField()
    name = serializers.CharField()
    namespace = serializers.CharField()
    traffic_type = serializers.CharField()
    revision = serializers.IntegerField()
    subject = serializers.CharField()
    dns_names = serializers.ListField(child=serializers.CharField())
    not_after = serializers.DateTimeField()
    days_left = serializers.IntegerField()
    sha256_fingerprint = serializers.CharField()
    clusters = serializers.ListField(child=serializers.CharField())


class CertificatesReportSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    expiring_within_days = serializers.IntegerField(allow_null=True)
    results = CertificateSerializer(many=True)


class IntegritySerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField()
    first_broken_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    gaps = serializers.IntegerField(help_text="Gaps left by retention purges, each vouched for by an anchor.")
    unsealed = serializers.IntegerField(
        help_text="Events committed but not yet sealed into the chain: listed and exported, not yet verified."
    )
    head_seq = serializers.IntegerField(allow_null=True, help_text="Sequence number of the newest sealed event.")
    head_hash = serializers.CharField(allow_null=True, help_text="Hash of the newest sealed event.")
