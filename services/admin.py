from django.contrib import admin

from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "allow_wildcards"]
    search_fields = ["slug", "name"]
    filter_horizontal = ["members"]


class RevisionInline(admin.TabularInline):
    model = GatewayServiceRevision
    fields = ["number", "approval", "author", "ticket", "decided_by", "decided_at", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


class StatusInline(admin.TabularInline):
    model = GatewayServiceStatus
    fields = ["cluster", "traffic_type", "state", "revision", "message", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(GatewayService)
class GatewayServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "namespace", "team", "traffic_type", "port", "protocol", "mode"]
    list_filter = ["team", "traffic_type", "protocol"]
    search_fields = ["name", "namespace", "hosts_index"]
    readonly_fields = [f.name for f in GatewayService._meta.fields]
    inlines = [RevisionInline, StatusInline]

    def has_add_permission(self, request):
        # Services are created through the API (validated, audited); the admin is a door, not a back door.
        return False

    def has_change_permission(self, request, obj=None):
        return False
