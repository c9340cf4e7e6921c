import django_filters

from audit.choices import Source
from audit.models import AuditEvent

ISO_DATETIME_HELP = "an ISO 8601 date-time, e.g. 2025-01-31T00:00:00Z (a date alone means its midnight UTC)"


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
    since = django_filters.IsoDateTimeFilter(
        field_name="at",
        lookup_expr="gte",
        help_text="Events at or after this time (inclusive).",
        error_messages={"invalid": f"Enter {ISO_DATETIME_HELP}."},
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="at",
        lookup_expr="lt",
        help_text="Events before this time (exclusive).",
        error_messages={"invalid": f"Enter {ISO_DATETIME_HELP}."},
    )

    class Meta:
        model = AuditEvent
        fields = ["team", "cluster", "action", "actor", "source", "object_id", "ticket", "since", "until"]
