from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet

from gatewayportal.admin import ActionDeleteMixin, ReadOnlyAdmin, admin_actor
from ticketing import actions, signatures
from ticketing.models import TicketingSource, WebhookDelivery

SOURCE_FIELDS = actions.SOURCE_FIELDS


class TicketingSourceForm(forms.ModelForm):
    """The secret is never shown: it is set on creation (generated when left blank) and rotated by an action."""

    new_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Only on creation. Leave blank to generate one; it is shown once after saving.",
    )

    class Meta:
        model = TicketingSource
        fields = SOURCE_FIELDS

    def clean(self):
        cleaned = super().clean()
        secret, kind = cleaned.get("new_secret"), cleaned.get("kind")
        if secret and self.instance.pk:
            self.add_error("new_secret", "Use the “Rotate secret” action to change the secret of an existing source.")
        elif secret and kind and (problem := signatures.secret_problem(kind, secret)):
            self.add_error("new_secret", problem)
        return cleaned


@admin.register(TicketingSource)
class TicketingSourceAdmin(ActionDeleteMixin, admin.ModelAdmin):
    form = TicketingSourceForm
    list_display = ["name", "kind", "team", "enabled", "require_references", "previous_secret_expires_at", "updated_at"]
    list_filter = ["kind", "enabled", "require_references", "team"]
    search_fields = ["name", "team__slug"]
    readonly_fields = ["previous_secret_expires_at", "created_at", "updated_at"]
    actions = ["rotate_secret"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "kind"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in SOURCE_FIELDS if name in form.cleaned_data}
        with admin_actor(request.user):
            if change:
                data.pop("kind", None)
                # The form has already written into `obj`; the action diffs against the stored row.
                actions.ticketing_source_update(source=TicketingSource.objects.get(pk=obj.pk), data=data)
                return
            data["secret"] = form.cleaned_data.get("new_secret") or None
            source, secret = actions.ticketing_source_create(data=data)
        obj.pk = source.pk
        messages.warning(request, f"Secret of {source.name} (shown only this once): {secret}")

    def delete_action(self, obj: TicketingSource) -> None:
        actions.ticketing_source_delete(source=obj)

    @admin.action(description="Rotate secret (the old one stays valid for 24 hours)")
    def rotate_secret(self, request, queryset: QuerySet[TicketingSource]):
        with admin_actor(request.user):
            for source in queryset:
                secret = actions.ticketing_source_rotate_secret(source=source)
                messages.warning(request, f"New secret of {source.name} (shown only this once): {secret}")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "source", "delivery_id", "ticket", "outcome"]
    list_filter = ["outcome", "source"]
    search_fields = ["delivery_id", "ticket"]
    date_hierarchy = "received_at"
