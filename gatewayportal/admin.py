"""API tokens in the admin: listed and revocable, never shown (only their prefix); created with `create_api_token`."""

from __future__ import annotations

from django.contrib import admin
from rest_framework.authtoken.models import TokenProxy

from gatewayportal.models import ApiToken

# DRF's own token page lists every key in clear; the portal's tokens live in ApiToken, hashed.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    search_fields = ("name", "user__username", "prefix")
    fields = ("user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at")

    def has_add_permission(self, request) -> bool:
        return False  # a token is shown once, by `manage.py create_api_token <username> --name ...`
