"""Audit reports: change counts, changes per week per team (with an SVG chart), managed certificates."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any

from django.db.models import Count, Prefetch, QuerySet
from django.db.models.functions import TruncWeek
from django.utils.safestring import mark_safe

from audit.models import AuditEvent
from services.choices import State
from services.models import GatewayService, GatewayServiceStatus

GROUP_BY = ("team", "cluster", "action", "actor")
NO_VALUE = "(none)"
# Colour-blind-safe palette (Okabe–Ito); teams beyond it reuse colours in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def change_counts(events: QuerySet[AuditEvent], group_by: str) -> list[dict[str, Any]]:
    """[{group_by: value, "count": n}], largest first."""
    if group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY)}, not {group_by!r}.")
    rows = events.order_by().values(group_by).annotate(count=Count("id")).order_by("-count", group_by)
    return [{group_by: row[group_by], "count": row["count"]} for row in rows]


@dataclass(frozen=True)
class WeeklyCount:
    week: date  # the Monday starting the ISO week
    team: str
    count: int


def weekly_counts(events: QuerySet[AuditEvent]) -> list[WeeklyCount]:
    rows = (
        events.order_by()
        .annotate(week=TruncWeek("at", tzinfo=UTC))
        .values("week", "team")
        .annotate(count=Count("id"))
        .order_by("week", "team")
    )
    return [WeeklyCount(_as_date(row["week"]), row["team"] or NO_VALUE, row["count"]) for row in rows]


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def weekly_chart_svg(counts: list[WeeklyCount], *, width: int = 760, height: int = 320) -> str:
    """A self-contained stacked bar chart: one bar per week, one colour per team. Pure."""
    if not counts:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60" role="img">'
            '<text x="10" y="35" font-family="sans-serif" font-size="14">No changes in this period.</text></svg>'
        )
    weeks = _all_weeks(min(c.week for c in counts), max(c.week for c in counts))
    teams = sorted({c.team for c in counts})
    colour = {team: PALETTE[i % len(PALETTE)] for i, team in enumerate(teams)}
    per_week: dict[date, dict[str, int]] = defaultdict(dict)
    for c in counts:
        per_week[c.week][c.team] = c.count
    top = max(sum(v.values()) for v in per_week.values())
    left, bottom, legend_h = 50, 40, 20 * len(teams) + 10
    plot_w, plot_h = width - left - 10, height - bottom - 10
    bar_w = plot_w / len(weeks)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + legend_h}" '
        f'role="img" font-family="sans-serif" font-size="11"><title>Changes per week per team</title>',
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" stroke="#333"/>',
        f'<text x="{left - 6}" y="14" text-anchor="end">{top}</text>',
        f'<text x="{left - 6}" y="{10 + plot_h}" text-anchor="end">0</text>',
    ]
    for i, week in enumerate(weeks):
        x, y = left + i * bar_w, 10 + plot_h
        for team in teams:
            n = per_week.get(week, {}).get(team, 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" '
                f'fill="{colour[team]}"><title>{escape(team)}, week of {week}: {n}</title></rect>'
            )
        if len(weeks) <= 12 or i % max(len(weeks) // 12, 1) == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 20}" text-anchor="middle">{week:%m-%d}</text>')
    for i, team in enumerate(teams):
        y = height + 20 * i
        parts.append(f'<rect x="{left}" y="{y}" width="12" height="12" fill="{colour[team]}"/>')
        parts.append(f'<text x="{left + 18}" y="{y + 10}">{escape(team)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def period_summary(
    events: QuerySet[AuditEvent], *, since: datetime | None, until: datetime | None, weekly: list[WeeklyCount]
) -> dict[str, Any]:
    """Counts over a period by every dimension and per week per team (JSON-ready)."""
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "total": events.count(),
        **{f"by_{key}": change_counts(events, key) for key in GROUP_BY},
        "per_week_per_team": [{"week": w.week.isoformat(), "team": w.team, "count": w.count} for w in weekly],
    }


def page_context(report: dict[str, Any], weekly: list[WeeklyCount]) -> dict[str, Any]:
    """Template context of the report page (`audit/report.html`), shared by the command and the admin."""
    chart = mark_safe(weekly_chart_svg(weekly))  # safe: every label in the SVG is escaped
    return {"report": report, "chart": chart}


def _all_weeks(first: date, last: date) -> list[date]:
    weeks, week = [], first
    while week <= last:
        weeks.append(week)
        week += timedelta(weeks=1)
    return weeks


def managed_certificates(
    services: QuerySet[GatewayService], *, expiring_within_days: int | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every certificate of a service's current revision, soonest expiry first, with its applied clusters."""
    now = now or datetime.now(UTC)
    applied = GatewayServiceStatus.objects.filter(state=State.APPLIED).select_related("cluster")
    rows = []
    for service in (
        services.filter(current_revision__certificate__isnull=False)
        .select_related("team", "current_revision")
        .prefetch_related(Prefetch("statuses", queryset=applied, to_attr="applied_statuses"))
    ):
        row = _certificate_row(service, now)
        if expiring_within_days is None or row["days_left"] <= expiring_within_days:
            rows.append(row)
    return sorted(rows, key=lambda r: (r["not_after"], r["team"], r["namespace"], r["name"]))


def _certificate_row(service: GatewayService, now: datetime) -> dict[str, Any]:
    certificate = service.current_revision.certificate
    not_after = _parse_time(certificate["not_after"])
    return {
        "service": str(service.id),
        "team": service.team.slug,
        "name": service.name,
        "namespace": service.namespace,
        "traffic_type": service.traffic_type,
        "revision": service.current_revision.number,
        "subject": certificate.get("subject", ""),
        "dns_names": certificate.get("dns_names", []),
        "not_after": not_after.astimezone(UTC).isoformat(),
        "days_left": (not_after - now).days,
        "sha256_fingerprint": certificate.get("sha256_fingerprint", ""),
        "clusters": sorted(status.cluster.name for status in service.applied_statuses),
    }


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
