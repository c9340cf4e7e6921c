"""Who may do what: platform engineers everything, team members their teams' objects."""

from django.contrib.auth.models import AnonymousUser, User
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
