"""The admin's shared base: read-only pages, object buttons, badges, and forms whose clean() runs the action.

Every app's admin builds on these; none imports another app's admin. The one page registered here is the
project's own model, API tokens: listed and revocable, never shown (only their prefix); created with
`create_api_token`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import TokenProxy

from gatewayportal.context import acting_as
from gatewayportal.exceptions import DomainError
from gatewayportal.models import ApiToken

# The colours of states in badges, named by what they mean so every app maps its own states onto them.
GREEN = "#2e7d32"  # done, healthy
GREY = "#546e7a"  # waiting, unknown, nothing to say
AMBER = "#ef6c00"  # waiting for a person, degraded, soon due
RED = "#c62828"  # failed, unreachable, expired
PINK = "#ad1457"  # refused by a person
BROWN = "#6d4c41"  # going away


def admin_actor(user):
    """Audit events written by admin actions name the logged-in engineer and the admin door."""
    return acting_as(name=user.get_username(), source="admin")


def lines(value: str) -> list[str]:
    """A textarea's non-blank lines, stripped: the admin's way of editing a list."""
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


def labels_text(labels: dict[str, str] | None) -> str:
    """Labels for a textarea: key=value, one a line."""
    return "\n".join(f"{k}={v}" for k, v in (labels or {}).items())


def parse_labels(value: str) -> dict[str, str]:
    """A textarea of key=value lines -> labels; a line without '=' is a form error."""
    labels: dict[str, str] = {}
    for line in lines(value):
        key, sep, text = line.partition("=")
        if not sep or not key.strip():
            raise forms.ValidationError(f"'{line}' is not a label; write key=value, one a line.")
        labels[key.strip()] = text.strip()
    return labels


def badge(text: str, color: str, title: str = ""):
    return format_html(
        '<span class="gp-badge" title="{}" style="display:inline-block;padding:1px 7px;margin:1px 2px;'
        'border-radius:9px;color:#fff;background:{};font-size:11px;white-space:nowrap">{}</span>',
        title,
        color,
        text,
    )


def pretty_json(value: Any):
    return format_html('<pre class="gp-json" style="margin:0">{}</pre>', json.dumps(value, indent=2, sort_keys=True))


# --- Errors from the API's serializers and the domain's actions, on the form ---------------------------------------


def error_items(errors: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """DRF-shaped nested errors -> (path, message) pairs, e.g. (("hosts", "0"), "not a DNS name")."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from error_items(value, (*prefix, str(key)))
    elif isinstance(errors, list | tuple):
        for index, value in enumerate(errors):
            if isinstance(value, dict | list | tuple):
                yield from error_items(value, (*prefix, str(index)))
            else:
                yield prefix, str(value)
    else:
        yield prefix, str(errors)


def add_api_errors(form: forms.Form, errors: Any, field_for_path: dict[str, str] | None = None) -> None:
    """Put errors from a serializer or a DomainError on the form field they name; the rest go on top of the form."""
    field_for_path = field_for_path or {}
    for path_, message in error_items(errors):
        field, rest = _form_field_for(form, path_, field_for_path)
        text = f"{'.'.join(rest)}: {message}" if rest else message
        form.add_error(field, text)


def _form_field_for(
    form: forms.Form, path_: tuple[str, ...], field_for_path: dict[str, str]
) -> tuple[str | None, tuple[str, ...]]:
    for length in range(len(path_), 0, -1):
        mapped = field_for_path.get(".".join(path_[:length]))
        if mapped:
            return mapped, path_[length:]
    if path_ and path_[0] in form.fields:
        return path_[0], path_[1:]
    if path_ and path_[0] == "non_field_errors":
        return None, path_[1:]
    return None, path_


class WriteOnlyTextarea(forms.Textarea):
    """A textarea for secrets: what was typed is never rendered back, not even after a validation error."""

    def format_value(self, value: Any) -> None:
        return None


# --- Forms whose clean() runs the action ---------------------------------------------------------------------------


class ActionForm(forms.ModelForm):
    """A model form whose clean() runs the domain action that writes the object.

    The action is the validator of record (Istio rules, tenancy, conflicts, names taken, reachability): only it
    can say whether the input is acceptable, and only by trying to write it. Running it in clean() lets its
    refusals (a DomainError) land on the form's fields like any other validation error. The write is safe
    because it happens inside the admin view's transaction, and `ActionFormAdmin` rolls that transaction back
    unless the view goes on to save: a page that is refused for any other reason leaves nothing behind, and
    the reconciles the action enqueues on commit are never sent.

    Subclasses implement `perform(cleaned)`: check the input's shape, call the action, set `self.instance`.
    """

    user: Any = None  # the logged-in engineer, set per request by ActionFormAdmin.get_form
    # Error paths of the API (e.g. "tls_options.tls_secret.key") -> the form field that shows them.
    field_for_path: dict[str, str] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warnings: list[str] = []

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            with admin_actor(self.user):
                self.perform(cleaned)
        except DomainError as exc:
            self.add_api_errors(exc.errors)
        return cleaned

    def perform(self, cleaned: dict[str, Any]) -> None:
        """Write through the action and set `self.instance` (and `self.warnings`); raise DomainError to refuse."""
        raise NotImplementedError

    def add_api_errors(self, errors: Any) -> None:
        add_api_errors(self, errors, self.field_for_path)


class ActionRelationsMixin:
    """For admins whose action writes the relations too (members, statuses): the inlines are read-only.

    So the admin saves no formset, and its history message names only the form's own changes.
    """

    def save_related(self, request, form, formsets, change: bool) -> None:
        return None

    def construct_change_message(self, request, form, formsets, add=False):
        return super().construct_change_message(request, form, [], add)


class ActionDeleteMixin:
    """Deletes, of one object or of a changelist selection, go through the app's action (audited, gateways
    reconciled), one object at a time, as the engineer. The admin names the action in `delete_action`."""

    def delete_action(self, obj: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} names the action that deletes its objects")

    def delete_model(self, request, obj) -> None:
        with admin_actor(request.user):
            self.delete_action(obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


class ActionFormAdmin(ActionRelationsMixin, admin.ModelAdmin):
    """The admin side of `ActionForm`: the action has already saved, so saving here does nothing.

    `save_model` and `save_related` deliberately write nothing: the action wrote the object, its relations and
    its audit event while the form was validated. Reaching `save_model` is what lets that write commit; a POST
    that does not (the form or an inline refused) is rolled back. Inlines of such an admin are read-only.
    """

    def get_form(self, request, obj=None, change=False, **kwargs):
        return self.with_user(super().get_form(request, obj, change=change, **kwargs), request)

    @staticmethod
    def with_user(form: type[forms.BaseForm], request: HttpRequest) -> type[forms.BaseForm]:
        return type(form.__name__, (form,), {"user": request.user})

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        request.gp_saved = False
        with transaction.atomic(using=router.db_for_write(self.model)):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if request.method == "POST" and not request.gp_saved:
                # The page was refused (a form or inline error) after the form's action may have written.
                transaction.set_rollback(True, using=router.db_for_write(self.model))
        return response

    def save_model(self, request, obj, form, change: bool) -> None:
        # Nothing to write: the action did while the form was validated. What is left is to keep it and say so.
        request.gp_saved = True
        for warning in getattr(form, "warnings", ()):
            messages.warning(request, warning)


# --- Read-only pages ------------------------------------------------------------------------------------------------


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browsable and searchable, never added, edited or deleted here, not even by superusers."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Rows shown beside their parent, never added or edited there (changes go through the actions)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- Buttons on an object's page -----------------------------------------------------------------------------------


class ObjectButtonsMixin:
    """Admin actions also offered as buttons on an object's page; each button posts to `<pk>/<action>/`."""

    object_buttons: tuple[str, ...] = ()
    change_form_template = "admin/gp_change_form.html"

    def buttons_for(self, request: HttpRequest, obj: Any) -> list[str]:
        """The buttons that make sense for this object; permissions are checked separately."""
        return list(self.object_buttons)

    def get_urls(self):
        opts = self.opts
        buttons = [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(self._button_view(name)),
                name=f"{opts.app_label}_{opts.model_name}_{name}",
            )
            for name in self.object_buttons
        ]
        return [*buttons, *super().get_urls()]

    def _allowed(self, request: HttpRequest, name: str) -> bool:
        permissions = getattr(getattr(self, name), "allowed_permissions", ())
        return all(getattr(self, f"has_{p}_permission")(request) for p in permissions)

    def _button_view(self, name: str):
        @require_POST
        def view(request: HttpRequest, object_id: str):
            obj = self.get_object(request, object_id)
            if obj is None:
                raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}.")
            if not self._allowed(request, name):
                raise PermissionDenied
            getattr(self, name)(request, self.get_queryset(request).filter(pk=obj.pk))
            return HttpResponseRedirect(
                reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
            )

        return view

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        buttons = []
        if obj is not None:
            for name in self.buttons_for(request, obj):
                if self._allowed(request, name):
                    url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=[obj.pk])
                    label = getattr(self, name).short_description
                    buttons.append({"name": name, "label": label, "url": url})
        return super().change_view(request, object_id, form_url, {"object_buttons": buttons, **(extra_context or {})})


# --- API tokens ---------------------------------------------------------------------------------------------------

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
