from datetime import UTC

import django_filters
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField

from audit.choices import Source
from audit.models import AuditEvent

ISO_DATETIME_HELP = "an ISO 8601 date-time, e.g. 2025-01-31T00:00:00Z (a date alone means its midnight UTC)"


class UTCIsoDateTimeField(IsoDateTimeField):
    """Compared in UTC: Python accepts UTC offsets up to 24 h, Postgres only up to 15:59 (a 500 otherwise)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return value
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


class UTCIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCIsoDateTimeField


class AuditEventFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(help_text="Team slug.")
    cluster = django_filters.CharFilter(help_text="Cluster name.")
    action = django_filters.CharFilter(help_text="Exact action, e.g. gateway_service.updated.")
    actor = django_filters.CharFilter(help_text="User name, or `system`.")
    source = django_filters.ChoiceFilter(
        choices=Source.choices,
        error_messages={
            "invalid_choice": f"%(value)s is not a source; accepted: {', '.join(Source.values)}.",
        },
    )
    object_id = django_filters.CharFilter()
    ticket = django_filters.CharFilter()
    since = UTCIsoDateTimeFilter(
        field_name="at",
        lookup_expr="gte",
        help_text="Events at or after this time (inclusive).",
        error_messages={"invalid": f"Enter {ISO_DATETIME_HELP}."},
    )
    until = UTCIsoDateTimeFilter(
        field_name="at",
        lookup_expr="lt",
        help_text="Events before this time (exclusive).",
        error_messages={"invalid": f"Enter {ISO_DATETIME_HELP}."},
    )

    class Meta:
        model = AuditEvent
        fields = ["team", "cluster", "action", "actor", "source", "object_id", "ticket", "since", "until"]
