"""Platform engineers' view of the registered clusters.

Credentials are write-only; every change, check and reconcile goes through clusters.actions, as the API does.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from clusters import actions, enqueue, health, selectors
from clusters.api.serializers import ClusterSerializer
from clusters.models import Cluster, GatewayState
from gatewayportal.admin import (
    AMBER,
    GREEN,
    GREY,
    RED,
    ActionDeleteMixin,
    ActionForm,
    ActionFormAdmin,
    ObjectButtonsMixin,
    ReadOnlyInline,
    WriteOnlyTextarea,
    admin_actor,
    badge,
    error_items,
    labels_text,
    parse_labels,
)
from gatewayportal.exceptions import DomainError
from gatewayportal.roles import is_platform

SECRET_FIELDS = ("token", "kubeconfig")


class ClusterForm(ActionForm):
    """The API's cluster body as a form; its clean() hands the input to the same serializer and action as the API."""

    token = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave empty to keep the stored one.",
    )
    kubeconfig = forms.CharField(
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(attrs={"rows": 4}),
        help_text="Write-only; instead of API server, CA and token. Leave empty to keep the stored one.",
    )
    labels = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="key=value, one a line."
    )

    class Meta:
        model = Cluster
        fields = list(actions.EDITABLE_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["labels"] = labels_text(self.instance.labels)
        for name in SECRET_FIELDS:
            self.initial[name] = ""

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data["labels"])

    def perform(self, cleaned: dict[str, Any]) -> None:
        stored = Cluster.objects.get(pk=self.instance.pk) if self.instance.pk else None
        payload = {name: cleaned.get(name) for name in actions.EDITABLE_FIELDS}
        for name in SECRET_FIELDS:
            if not payload[name]:
                payload.pop(name)  # empty means "keep the stored one"
        serializer = ClusterSerializer(instance=stored, data=payload, partial=stored is not None)
        if not serializer.is_valid():
            self.add_api_errors(serializer.errors)
            return
        fields = dict(serializer.validated_data)
        if stored is None:
            self.instance = actions.cluster_create(**fields)
        else:
            self.instance = actions.cluster_update(cluster=stored, **fields)


class GatewayStateInline(ReadOnlyInline):
    model = GatewayState
    verbose_name_plural = "gateways (last reconcile)"
    fields = ["traffic_type", "managed_count", "last_result", "last_reconciled_at", "last_message", "resource_version"]

    @admin.display(description="managed servers")
    def managed_count(self, state: GatewayState) -> int:
        return len(state.managed_servers or [])


@admin.register(Cluster)
class ClusterAdmin(ObjectButtonsMixin, ActionDeleteMixin, ActionFormAdmin):
    form = ClusterForm
    list_display = ("name", "health", "enabled", "requires_approval", "label_list", "managed_servers")
    list_filter = ("enabled", "requires_approval", "reachable")
    search_fields = ("name",)
    actions = ["check_connection", "reconcile_now", "enable", "disable"]
    object_buttons = ("check_connection", "reconcile_now")
    inlines = [GatewayStateInline]
    readonly_fields = ("health", "health_message", "credentials_updated_at", "live_gateways")
    fieldsets = [
        (None, {"fields": ["name", "labels", "enabled", "requires_approval"]}),
        (
            "Gateways",
            {
                "fields": [
                    ("ingress_gateway", "ingress_secret_namespace"),
                    ("egress_gateway", "egress_secret_namespace"),
                    "namespace_scoped_hosts",
                ]
            },
        ),
        ("Credentials (write-only)", {"fields": ["api_server", "ca_cert", "token", "kubeconfig"]}),
    ]
    change_fieldsets = [
        ("Health", {"fields": ["health", "health_message", "credentials_updated_at", "live_gateways"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("gateway_states")

    def get_fieldsets(self, request, obj=None):
        return [*self.fieldsets, *self.change_fieldsets] if obj is not None else self.fieldsets

    def delete_action(self, obj: Cluster) -> None:
        actions.cluster_delete(cluster=obj)

    def has_operate_permission(self, request) -> bool:
        return is_platform(request.user)

    # Columns and read-only fields.

    @admin.display(description="health", ordering="reachable")
    def health(self, cluster: Cluster):
        if cluster.reachable is None:
            return badge("never checked", GREY)
        checked = cluster.checked_at.strftime("%Y-%m-%d %H:%M") if cluster.checked_at else "?"
        if cluster.reachable and not cluster.health_message:
            text, color = f"ok · {cluster.istio_api_version or 'Istio API ?'} · {checked}", GREEN
        elif cluster.reachable:
            text, color = f"degraded · {cluster.istio_api_version or 'Istio API ?'} · {checked}", AMBER
        else:
            text, color = f"unreachable · {checked}", RED
        return badge(text, color, cluster.health_message)

    @admin.display(description="labels")
    def label_list(self, cluster: Cluster) -> str:
        return ", ".join(f"{k}={v}" for k, v in (cluster.labels or {}).items())

    @admin.display(description="managed servers")
    def managed_servers(self, cluster: Cluster) -> str:
        states = {s.traffic_type: s for s in cluster.gateway_states.all()}
        return " · ".join(
            f"{traffic}: {len(states[traffic].managed_servers or [])}" if traffic in states else f"{traffic}: -"
            for traffic in actions.TRAFFIC_TYPES
        )

    @admin.display(description="live gateways")
    def live_gateways(self, cluster: Cluster):
        # Read from the cluster when the page is shown: unmanaged servers are only known live.
        rows = []
        for traffic_type in actions.TRAFFIC_TYPES:
            view = selectors.gateway_view(cluster=cluster, traffic_type=traffic_type)
            if view["reachable"]:
                summary = f"{len(view['managed_servers'])} managed, {len(view['unmanaged_servers'])} unmanaged, " + (
                    "in sync" if view["in_sync"] else "drift: " + _drift(view["drift"])
                )
            else:
                summary = f"not readable: {view['message']}"
            rows.append((traffic_type, view["gateway"], summary))
        return format_html("<ul>{}</ul>", format_html_join("", "<li><b>{}</b> {}: {}</li>", rows))

    # Actions (also buttons on the cluster page).

    @admin.action(description="Check connection", permissions=["operate"])
    def check_connection(self, request, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset:
            with admin_actor(request.user):
                report = health.cluster_check(cluster=cluster)
            if report["ok"]:
                messages.success(request, f"{cluster}: reachable, {report['version']}, {report['istio_api_version']}.")
            else:
                messages.error(request, f"{cluster}: {report['message'] or 'not reachable'}")

    @admin.action(description="Reconcile now", permissions=["operate"])
    def reconcile_now(self, request, queryset: QuerySet[Cluster]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        with admin_actor(request.user):
            for traffic_type in actions.TRAFFIC_TYPES:
                enqueue.request_reconcile(cluster_ids=ids, traffic_type=traffic_type)
        messages.success(request, f"Reconcile requested for {len(ids)} cluster(s), both gateways.")

    @admin.action(description="Enable", permissions=["operate"])
    def enable(self, request, queryset: QuerySet[Cluster]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable", permissions=["operate"])
    def disable(self, request, queryset: QuerySet[Cluster]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Cluster], enabled: bool) -> None:
        changed = []
        for cluster in queryset:
            try:
                with admin_actor(request.user):
                    actions.cluster_update(cluster=cluster, enabled=enabled)
            except DomainError as exc:
                messages.error(request, f"{cluster}: {'; '.join(m for _, m in error_items(exc.errors))}")
            else:
                changed.append(cluster.name)
        if changed:
            messages.success(request, f"{'Enabled' if enabled else 'Disabled'}: {', '.join(changed)}.")


def _drift(drift: dict[str, list[str]]) -> str:
    return "; ".join(f"{kind} {', '.join(names)}" for kind, names in drift.items() if names) or "none"


@admin.register(GatewayState)
class GatewayStateAdmin(admin.ModelAdmin):
    list_display = ("cluster", "traffic_type", "last_result", "last_reconciled_at")
    list_filter = ("traffic_type", "last_result")
    readonly_fields = [f.name for f in GatewayState._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
