"""An audit event as every API shows it (the audit log and a service's history alike)."""

from rest_framework import serializers

from audit.models import EVENT_FIELDS, AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = EVENT_FIELDS
        read_only_fields = EVENT_FIELDS
