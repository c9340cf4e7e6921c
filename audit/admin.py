from datetime import UTC, date, datetime, time, timedelta

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from audit import reports
from audit.models import AuditAnchor, AuditEvent
from gatewayportal.admin import ReadOnlyAdmin

DEFAULT_REPORT_WEEKS = 12


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "source", "action", "object_repr", "team", "cluster", "ticket", "seq")
    list_filter = ("source", "action", "team", "cluster")
    search_fields = ("actor", "action", "object_id", "object_repr", "ticket", "request_id")
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def get_urls(self):
        report = path("report/", self.admin_site.admin_view(self.report_view), name="audit_auditevent_report")
        return [report, *super().get_urls()]

    def report_view(self, request):
        """The audit report with its weekly chart; defaults to the last twelve weeks."""
        today = timezone.now().date()
        since, until, error = _period(request.GET, default_since=today - timedelta(weeks=DEFAULT_REPORT_WEEKS))
        end = until or today + timedelta(days=1)
        events = self.get_queryset(request).filter(at__gte=_midnight(since), at__lt=_midnight(end))
        weekly = reports.weekly_counts(events)
        report = reports.period_summary(events, since=_midnight(since), until=_midnight(end), weekly=weekly)
        context = {
            **self.admin_site.each_context(request),
            **reports.page_context(report, weekly),
            "opts": self.model._meta,
            "since_input": since.isoformat(),
            "until_input": until.isoformat() if until else "",
            "error": error,
        }
        return TemplateResponse(request, "admin/audit/auditevent/report.html", context)


def _period(params, *, default_since: date) -> tuple[date, date | None, str]:
    try:
        since = date.fromisoformat(params["since"]) if params.get("since") else default_since
        until = date.fromisoformat(params["until"]) if params.get("until") else None
    except ValueError:
        return default_since, None, "Dates must be YYYY-MM-DD; showing the last twelve weeks."
    return since, until, ""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@admin.register(AuditAnchor)
class AuditAnchorAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event_id", "purged_count", "first_purged_id", "last_purged_id", "archive")
    readonly_fields = [f.name for f in AuditAnchor._meta.fields]
