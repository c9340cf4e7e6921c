import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import reports
from audit.export import csv_lines
from audit.models import AuditEvent

FORMATS = ("csv", "json", "html")


def _moment(option: str, value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"{option} {value!r} is not an ISO 8601 date or date-time (e.g. 2025-01-31T12:00:00Z).")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


@contextlib.contextmanager
def _opened(path: str | None) -> Iterator[TextIO]:
    if not path:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        yield f


class Command(BaseCommand):
    help = (
        "Audit report for the period [since, until). csv: every event; json: counts by team, cluster, action, "
        "actor and per week per team; html: one self-contained page with those counts and a weekly chart."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, help="Start, inclusive (ISO 8601 date or date-time, UTC).")
        parser.add_argument("--until", required=True, help="End, exclusive (ISO 8601 date or date-time, UTC).")
        parser.add_argument("--format", choices=FORMATS, default="json")
        parser.add_argument("--output", "-o", help="File to write (default: standard output).")

    def handle(self, *args, since: str, until: str, format: str, output: str | None, **options):
        start, end = _moment("--since", since), _moment("--until", until)
        if start >= end:
            raise CommandError(f"--until ({until}) must be later than --since ({since}).")
        events = AuditEvent.objects.filter(at__gte=start, at__lt=end).order_by("id")
        with _opened(output) as out:
            if format == "csv":
                out.writelines(csv_lines(events))
                return
            weekly = reports.weekly_counts(events)
            report = reports.period_summary(events, since=start, until=end, weekly=weekly)
            if format == "json":
                out.write(json.dumps(report, indent=2) + "\n")
            else:
                out.write(render_to_string("audit/report.html", reports.page_context(report, weekly)))
