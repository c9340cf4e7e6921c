"""Reads: audit events a user may see."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from audit.models import AuditEvent
from gatewayportal.roles import is_platform
from services.models import Team


def visible_team_slugs(user: User | AnonymousUser) -> QuerySet | None:
    """Slugs of the user's teams; None means every team (platform engineers)."""
    if is_platform(user):
        return None
    return Team.objects.filter(members=user.pk).values("slug") if user.is_authenticated else Team.objects.none()


def audit_events_for(user: User | AnonymousUser) -> QuerySet[AuditEvent]:
    """Platform engineers see every event; team members those whose `team` is one of theirs."""
    slugs = visible_team_slugs(user)
    events = AuditEvent.objects.all()
    return events if slugs is None else events.filter(team__in=slugs)


def object_history(*, object_type: str, object_id: str) -> QuerySet[AuditEvent]:
    """Every event about one object, oldest first (callers have already checked the object is visible)."""
    return AuditEvent.objects.filter(object_type=object_type, object_id=object_id).order_by("id")
