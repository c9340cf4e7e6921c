"""Who may do what: platform engineers everything, team members their teams' objects."""

from django.contrib.auth.models import AnonymousUser, Group, User
from django.db.models import Exists, OuterRef
from rest_framework.permissions import BasePermission

PLATFORM_GROUP = "platform"


def is_platform(user: User | AnonymousUser) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    cached = getattr(user, "_gp_is_platform", None)
    if cached is None:
        cached = user.groups.filter(name=PLATFORM_GROUP).exists()
        user._gp_is_platform = cached
    return cached


def in_platform_group(user_field: str) -> Exists:
    """SQL for "the user in `user_field` is in the platform group", so the query that loads a user can answer
    `is_platform` too (`remember_platform`) instead of a second query on every request."""
    return Exists(Group.objects.filter(name=PLATFORM_GROUP, user=OuterRef(user_field)))


def remember_platform(user: User, member: bool) -> None:
    user._gp_is_platform = member


class IsPlatform(BasePermission):
    message = "Only platform engineers may do this."

    def has_permission(self, request, view) -> bool:
        return is_platform(request.user)


class IsPlatformOrReadOnly(BasePermission):
    message = "Only platform engineers may change this."

    def has_permission(self, request, view) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return bool(request.user and request.user.is_authenticated)
        return is_platform(request.user)
