"""Basic cluster admin: credentials are write-only, every change goes through the audited actions."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from clusters import actions
from clusters.models import Cluster, GatewayState
from gatewayportal.context import acting_as


class ClusterForm(forms.ModelForm):
    token = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Leave empty to keep the current one."
    )
    kubeconfig = forms.CharField(
        required=False, widget=forms.Textarea, help_text="Leave empty to keep the current one."
    )

    class Meta:
        model = Cluster
        fields = list(actions.EDITABLE_FIELDS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Write-only: never render stored credentials back into the page.
        self.initial["token"] = ""
        self.initial["kubeconfig"] = ""


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    form = ClusterForm
    list_display = ("name", "enabled", "requires_approval", "reachable", "checked_at", "istio_api_version")
    list_filter = ("enabled", "requires_approval", "reachable")
    search_fields = ("name",)
    readonly_fields = ("reachable", "checked_at", "health_message", "istio_api_version", "credentials_updated_at")

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data.get(name) for name in actions.EDITABLE_FIELDS if name in form.cleaned_data}
        for secret in ("token", "kubeconfig"):
            if not fields.get(secret):
                fields.pop(secret, None)  # empty means "keep"
        with acting_as(name=request.user.get_username(), source="admin"):
            if change:
                fresh = Cluster.objects.get(pk=obj.pk)
                form.instance = actions.cluster_update(cluster=fresh, **fields)
            else:
                form.instance = actions.cluster_create(**fields)

    def delete_model(self, request, obj):
        with acting_as(name=request.user.get_username(), source="admin"):
            actions.cluster_delete(cluster=obj)


@admin.register(GatewayState)
class GatewayStateAdmin(admin.ModelAdmin):
    list_display = ("cluster", "traffic_type", "last_result", "last_reconciled_at")
    list_filter = ("traffic_type", "last_result")
    readonly_fields = [f.name for f in GatewayState._meta.fields]
