"""The platform engineers' door to teams and gateway services.

Every write goes through services.actions, exactly like the API: the same serializer checks the shape, the
same action validates, audits and enqueues reconciles after commit. The admin is a door, not a back door.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html_join

from clusters.enqueue import request_reconcile
from gatewayportal.admin import (
    AMBER,
    BROWN,
    GREEN,
    GREY,
    PINK,
    RED,
    ActionDeleteMixin,
    ActionForm,
    ActionFormAdmin,
    ActionRelationsMixin,
    ObjectButtonsMixin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    WriteOnlyTextarea,
    add_api_errors,
    admin_actor,
    badge,
    error_items,
    labels_text,
    lines,
    parse_labels,
    pretty_json,
)
from gatewayportal.exceptions import DomainError
from gatewayportal.roles import is_platform
from services import actions
from services.api.serializers import GatewayServiceSerializer, TeamSerializer
from services.choices import Approval, Protocol, State, TLSMode, TLSProtocolVersion, TrafficType
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus, Team
from services.selectors import approval_diff, gateway_service_view

STATE_COLORS = {
    State.APPLIED: GREEN,
    State.PENDING: GREY,
    State.AWAITING_APPROVAL: AMBER,
    State.FAILED: RED,
    State.REJECTED: PINK,
    State.REMOVING: BROWN,
}
APPROVAL_COLORS = {
    Approval.NOT_REQUIRED: GREY,
    Approval.PENDING: AMBER,
    Approval.APPROVED: GREEN,
    Approval.REJECTED: PINK,
}


# --- Teams ---------------------------------------------------------------------------------------------------------


def _line_list(help_text: str, *, rows: int) -> forms.CharField:
    """An optional list edited one item per line (`lines` reads it back)."""
    return forms.CharField(widget=forms.Textarea(attrs={"rows": rows}), required=False, help_text=help_text)


class TeamForm(forms.ModelForm):
    """Lists are edited one item per line; the API's serializer checks them, team_save writes and audits."""

    namespaces = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Kubernetes namespaces, one a line."
    )
    allowed_domains = _line_list("DNS domains the team may expose (without '*.'), one a line.", rows=3)
    idp_groups = _line_list("Identity-provider groups whose members belong to the team, one a line.", rows=2)
    trusted_identities = forms.JSONField(
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='Pipelines acting as the team: [{"issuer": "https://…", "audience": "…", '
        '"claims": {"repository": "org/repo", "ref": "refs/heads/main"}}].',
    )
    allowed_clusters = _line_list(
        "Cluster names the team may target, one a line; empty = every cluster. Applies to later writes.", rows=2
    )
    allowed_cluster_selector = _line_list(
        "Labels (key=value, one a line) a cluster must carry for the team to target it; empty = any.", rows=2
    )
    granted_secrets = _line_list(
        "Secrets in the gateways' secret namespace the team may name in tls_secret_ref, one a line.", rows=2
    )

    class Meta:
        model = Team
        fields = TeamSerializer.Meta.fields  # the form edits what the API writes

    QUOTAS = ("max_services", "max_hosts_per_gateway", "gateway_budget_share")
    LISTS = (
        "namespaces",
        "allowed_domains",
        "allowed_clusters",
        "allowed_cluster_selector",
        "granted_secrets",
        "idp_groups",
        "trusted_identities",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in self.QUOTAS:
            self.fields[name].required = False  # left empty: the stored value, or the default for a new team
        if self.instance.pk:
            self.initial["namespaces"] = "\n".join(self.instance.namespaces)
            self.initial["allowed_domains"] = "\n".join(self.instance.allowed_domains)
            self.initial["idp_groups"] = "\n".join(self.instance.idp_groups)
            self.initial["allowed_clusters"] = "\n".join(self.instance.allowed_clusters or [])
            self.initial["allowed_cluster_selector"] = labels_text(self.instance.allowed_cluster_selector)
            self.initial["granted_secrets"] = "\n".join(self.instance.granted_secrets or [])

    def clean_allowed_cluster_selector(self) -> dict[str, str] | None:
        return parse_labels(self.cleaned_data["allowed_cluster_selector"]) or None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        payload = {
            "slug": cleaned["slug"],
            "name": cleaned["name"],
            "namespaces": lines(cleaned["namespaces"]),
            "allowed_domains": lines(cleaned["allowed_domains"]),
            "allow_wildcards": cleaned["allow_wildcards"],
            "members": [user.get_username() for user in cleaned.get("members") or []],
            "idp_groups": lines(cleaned.get("idp_groups") or ""),
            "trusted_identities": cleaned.get("trusted_identities") or [],
            "allowed_clusters": lines(cleaned["allowed_clusters"]) or None,
            "allowed_cluster_selector": cleaned["allowed_cluster_selector"],
            "granted_secrets": lines(cleaned["granted_secrets"]),
        }
        payload.update({name: cleaned[name] for name in self.QUOTAS if cleaned.get(name) is not None})
        serializer = TeamSerializer(self.instance if self.instance.pk else None, data=payload)
        if not serializer.is_valid():
            add_api_errors(self, serializer.errors)
            return cleaned
        self.validated_data = dict(serializer.validated_data)
        # The JSON model fields must hold the checked values, not the text typed in, for the model's own checks.
        for name in self.LISTS:
            cleaned[name] = self.validated_data.get(name)
        for name in self.QUOTAS:
            if cleaned.get(name) is None:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class TeamServiceInline(ReadOnlyInline):
    model = GatewayService
    verbose_name_plural = "gateway services"
    fields = ["name", "namespace", "traffic_type", "port", "protocol", "mode", "hosts_index"]
    show_change_link = True


@admin.register(Team)
class TeamAdmin(ActionDeleteMixin, ActionRelationsMixin, admin.ModelAdmin):
    form = TeamForm
    list_display = [
        "slug",
        "name",
        "namespace_list",
        "domain_list",
        "allow_wildcards",
        "idp_group_list",
        "max_services",
        "member_count",
        "service_count",
    ]
    search_fields = ["slug", "name"]
    list_filter = ["allow_wildcards"]
    filter_horizontal = ["members"]
    inlines = [TeamServiceInline]

    def get_queryset(self, request):
        from django.db.models import Count

        return (
            super()
            .get_queryset(request)
            .annotate(gp_members=Count("members", distinct=True), gp_services=Count("services", distinct=True))
        )

    @admin.display(description="namespaces")
    def namespace_list(self, team: Team) -> str:
        return ", ".join(team.namespaces)

    @admin.display(description="domains")
    def domain_list(self, team: Team) -> str:
        return ", ".join(team.allowed_domains)

    @admin.display(description="IdP groups")
    def idp_group_list(self, team: Team) -> str:
        return ", ".join(team.idp_groups)

    @admin.display(description="members", ordering="gp_members")
    def member_count(self, team: Team) -> int:
        return team.gp_members

    @admin.display(description="services", ordering="gp_services")
    def service_count(self, team: Team) -> int:
        return team.gp_services

    def save_model(self, request, obj: Team, form: TeamForm, change: bool) -> None:
        # The form already copied the input onto `obj`; team_save diffs against the stored row for the audit.
        stored = Team.objects.get(pk=obj.pk) if change else None
        with admin_actor(request.user):
            form.instance = actions.team_save(data=dict(form.validated_data), team=stored)

    def delete_action(self, obj: Team) -> None:
        actions.team_delete(team=obj)


# --- Gateway services: add form ------------------------------------------------------------------------------------

TLS_NONE, TLS_SECRET, TLS_SECRET_REF, TLS_SECRET_PATH = "", "tls_secret", "tls_secret_ref", "tls_secret_path"
TLS_FIELD_FOR_PATH = {
    "team": "team",
    "tls_options.tls_secret.cert": "tls_cert",
    "tls_options.tls_secret.key": "tls_key",
    "tls_options.tls_secret.ca_cert": "tls_ca_cert",
    "tls_options.tls_secret_ref.secret_name": "tls_secret_name",
    "tls_options.tls_secret_path.cert_path": "tls_cert_path",
    "tls_options.tls_secret_path.key_path": "tls_key_path",
    "tls_options.tls_secret_path.ca_cert_path": "tls_ca_cert_path",
    "tls_options": "tls_kind",
}


def _optional_choices(choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("", "---------"), *choices]


class GatewayServiceAddForm(ActionForm):
    """The API's create body as a form. Its clean() hands the input to the same serializer and action as the API."""

    field_for_path = TLS_FIELD_FOR_PATH

    team = forms.ModelChoiceField(Team.objects.all(), to_field_name="slug")
    name = forms.CharField(max_length=63, help_text="DNS-1123 label, unique in its namespace.")
    namespace = forms.CharField(max_length=63, help_text="One of the team's namespaces.")
    traffic_type = forms.ChoiceField(choices=TrafficType.choices)
    hosts = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="One host a line.")
    port = forms.IntegerField()
    protocol = forms.ChoiceField(choices=Protocol.choices)
    mode = forms.ChoiceField(choices=_optional_choices(TLSMode.choices), required=False, label="TLS mode")
    tls_kind = forms.ChoiceField(
        label="TLS material",
        required=False,
        choices=[
            (TLS_NONE, "none"),
            (TLS_SECRET, "certificate and key (stored encrypted, pushed as a Secret)"),
            (TLS_SECRET_REF, "existing secret in the gateway namespace"),
            (TLS_SECRET_PATH, "files mounted in the gateway pod"),
        ],
    )
    tls_cert = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, label="certificate (PEM)")
    tls_key = forms.CharField(
        widget=WriteOnlyTextarea(attrs={"rows": 4}),
        required=False,
        strip=False,
        label="private key (PEM)",
        help_text="Write-only: never shown again, re-enter it after an error.",
    )
    tls_ca_cert = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="CA (MUTUAL)")
    tls_secret_name = forms.CharField(required=False, label="secret name")
    tls_cert_path = forms.CharField(required=False, label="certificate path")
    tls_key_path = forms.CharField(required=False, label="key path")
    tls_ca_cert_path = forms.CharField(required=False, label="CA path")
    https_redirect = forms.BooleanField(required=False)
    min_protocol_version = forms.ChoiceField(choices=_optional_choices(TLSProtocolVersion.choices), required=False)
    max_protocol_version = forms.ChoiceField(choices=_optional_choices(TLSProtocolVersion.choices), required=False)
    clusters = forms.ModelMultipleChoiceField(
        queryset=None, to_field_name="name", required=False, widget=forms.CheckboxSelectMultiple
    )
    cluster_selector = _line_list(
        "Instead of clusters: labels as key=value, one a line; every enabled cluster matching all of them.", rows=2
    )
    ticket = forms.CharField(max_length=100, required=False)

    class Meta:
        model = GatewayService
        fields: list[str] = []
        # The action checks the model. Without this, Django would check the empty instance the form starts from
        # as if the same-named form fields had filled it ("name cannot be blank").
        exclude = [f.name for f in GatewayService._meta.fields]  # noqa: DJ006

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from clusters.models import Cluster

        super().__init__(*args, **kwargs)
        self.fields["clusters"].queryset = Cluster.objects.order_by("name")

    def perform(self, cleaned: dict[str, Any]) -> None:
        selector = self._selector(cleaned["cluster_selector"])
        if selector is None:
            return
        serializer = GatewayServiceSerializer(data=self._payload(cleaned, selector))
        if not serializer.is_valid():
            self.add_api_errors(serializer.errors)
            return
        self.instance, self.warnings = actions.gateway_service_create(
            team=cleaned["team"],
            data=dict(serializer.validated_data),
            user=self.user,
            is_platform=is_platform(self.user),
        )

    def _selector(self, text: str) -> dict[str, str] | None:
        selector: dict[str, str] = {}
        for line in lines(text):
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                self.add_error("cluster_selector", f"'{line}' is not a label; write key=value, one a line.")
                return None
            selector[key.strip()] = value.strip()
        return selector

    def _payload(self, cleaned: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "name": cleaned["name"],
            "namespace": cleaned["namespace"],
            "traffic_type": cleaned["traffic_type"],
            "hosts": lines(cleaned["hosts"]),
            "port": cleaned["port"],
            "protocol": cleaned["protocol"],
            "mode": cleaned["mode"] or None,
            "https_redirect": cleaned["https_redirect"],
            "min_protocol_version": cleaned["min_protocol_version"] or None,
            "max_protocol_version": cleaned["max_protocol_version"] or None,
            "clusters": [cluster.name for cluster in cleaned["clusters"]],
            "cluster_selector": selector or None,
            "ticket": cleaned["ticket"],
        }
        tls = self._tls_options(cleaned)
        if tls:
            payload["tls_options"] = tls
        return payload

    @staticmethod
    def _tls_options(cleaned: dict[str, Any]) -> dict[str, Any]:
        kind = cleaned["tls_kind"]
        if kind == TLS_SECRET:
            secret = {"cert": cleaned["tls_cert"], "key": cleaned["tls_key"]}
            if cleaned["tls_ca_cert"]:
                secret["ca_cert"] = cleaned["tls_ca_cert"]
            return {TLS_SECRET: secret}
        if kind == TLS_SECRET_REF:
            return {TLS_SECRET_REF: {"secret_name": cleaned["tls_secret_name"]}}
        if kind == TLS_SECRET_PATH:
            paths = {"cert_path": cleaned["tls_cert_path"], "key_path": cleaned["tls_key_path"]}
            if cleaned["tls_ca_cert_path"]:
                paths["ca_cert_path"] = cleaned["tls_ca_cert_path"]
            return {TLS_SECRET_PATH: paths}
        return {}


ADD_FIELDSETS = [
    (None, {"fields": ["team", "name", "namespace", "traffic_type", "hosts", "port", "protocol", "mode"]}),
    (
        "TLS",
        {
            "fields": [
                "tls_kind",
                "tls_cert",
                "tls_key",
                "tls_ca_cert",
                "tls_secret_name",
                ("tls_cert_path", "tls_key_path", "tls_ca_cert_path"),
                "https_redirect",
                ("min_protocol_version", "max_protocol_version"),
            ]
        },
    ),
    ("Where", {"fields": ["clusters", "cluster_selector", "ticket"]}),
]


# --- Gateway services: detail and list -----------------------------------------------------------------------------


class RevisionInline(ReadOnlyInline):
    model = GatewayServiceRevision
    fields = [
        "number",
        "approval_badge",
        "approval_reference",
        "author",
        "ticket",
        "decided_by",
        "decided_at",
        "decision_comment",
        "created_at",
        "hosts",
    ]

    @admin.display(description="approval")
    def approval_badge(self, revision: GatewayServiceRevision):
        return badge(revision.get_approval_display(), APPROVAL_COLORS.get(revision.approval, GREY))

    @admin.display(description="hosts")
    def hosts(self, revision: GatewayServiceRevision) -> str:
        return ", ".join(revision.spec.get("hosts") or [])


class StatusInline(ReadOnlyInline):
    model = GatewayServiceStatus
    verbose_name_plural = "status per cluster"
    fields = ["cluster", "traffic_type", "state_badge", "revision", "message", "updated_at"]

    @admin.display(description="state")
    def state_badge(self, status: GatewayServiceStatus):
        return state_badge(status)


def state_badge(status: GatewayServiceStatus):
    return badge(status.get_state_display(), STATE_COLORS.get(status.state, GREY), title=status.message)


@admin.register(GatewayService)
class GatewayServiceAdmin(ObjectButtonsMixin, ActionDeleteMixin, ActionFormAdmin):
    list_display = [
        "__str__",
        "team",
        "host_list",
        "port",
        "protocol",
        "mode",
        "traffic_type",
        "approval",
        "cluster_states",
    ]
    list_filter = [
        "team",
        ("statuses__cluster", admin.RelatedOnlyFieldListFilter),
        "statuses__state",
        "protocol",
        "current_revision__approval",
        "traffic_type",
    ]
    search_fields = ["hosts_index", "name", "namespace"]
    actions = ["approve", "reject", "reconcile"]
    inlines = [StatusInline, RevisionInline]
    detail_fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "namespace",
                    "team",
                    "traffic_type",
                    "host_list",
                    ("port", "protocol", "mode"),
                    ("approval", "approval_reference"),
                    "revisions_running",
                    "cluster_states",
                    ("created_by", "created_at", "updated_at"),
                    "deleting_at",
                ]
            },
        ),
        ("Rendered server block", {"fields": ["server_block", "credential_name"]}),
        ("Awaiting approval: live diff on each gated cluster", {"fields": ["approval_diff"]}),
        ("Certificate", {"fields": ["certificate_expiry", "certificate_summary"]}),
    ]
    readonly_fields = [
        "host_list",
        "approval",
        "approval_reference",
        "revisions_running",
        "cluster_states",
        "server_block",
        "credential_name",
        "approval_diff",
        "certificate_expiry",
        "certificate_summary",
    ]
    object_buttons = ("approve", "reject", "reconcile")

    def get_queryset(self, request):
        statuses = GatewayServiceStatus.objects.select_related("cluster")
        return (
            super()
            .get_queryset(request)
            .select_related("team", "current_revision", "approved_revision")
            .prefetch_related(Prefetch("statuses", queryset=statuses))
        )

    # A service changes only by a new revision through the API or the add form; the detail page is read-only.
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return is_platform(request.user) and super().has_add_permission(request)

    def has_decide_permission(self, request) -> bool:
        return is_platform(request.user)

    def has_reconcile_permission(self, request) -> bool:
        return is_platform(request.user)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        return self.with_user(GatewayServiceAddForm, request)

    def get_fieldsets(self, request, obj=None):
        return self.detail_fieldsets if obj is not None else ADD_FIELDSETS

    def get_inline_instances(self, request, obj=None):
        return super().get_inline_instances(request, obj) if obj is not None else []

    def get_deleted_objects(self, objs, request):
        # Revisions and statuses go with their service through gateway_service_delete; they are read-only
        # in their own admin pages, which must not make the service itself undeletable here.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_action(self, obj: GatewayService) -> None:
        actions.gateway_service_delete(service=obj)

    # Columns and read-only fields.

    @admin.display(description="hosts")
    def host_list(self, service: GatewayService) -> str:
        return ", ".join(service.current_revision.spec["hosts"]) if service.current_revision else ""

    @admin.display(description="approval", ordering="current_revision__approval")
    def approval(self, service: GatewayService):
        revision = service.current_revision
        if revision is None:
            return "-"
        return badge(
            f"r{revision.number} {revision.get_approval_display()}", APPROVAL_COLORS.get(revision.approval, GREY)
        )

    @admin.display(description="approval reference")
    def approval_reference(self, service: GatewayService) -> str:
        return service.current_revision.approval_reference if service.current_revision else "-"

    @admin.display(description="revisions running")
    def revisions_running(self, service: GatewayService) -> str:
        current = service.current_revision.number if service.current_revision else "-"
        approved = service.approved_revision.number if service.approved_revision else "none yet"
        return f"current: r{current}; on clusters that require approval: r{approved}"

    @admin.display(description="clusters")
    def cluster_states(self, service: GatewayService):
        statuses = list(service.statuses.all())
        if not statuses:
            return "-"
        return format_html_join(
            " ",
            "{}",
            ((badge(f"{s.cluster.name}: {s.state}", STATE_COLORS.get(s.state), s.message),) for s in statuses),
        )

    def _view(self, service: GatewayService) -> dict[str, Any]:
        # One service per detail page, so the selector's single query for the cluster list is fine.
        cached = getattr(service, "_gp_view", None)
        if cached is None:
            cached = service._gp_view = gateway_service_view(service)
        return cached

    @admin.display(description="server block")
    def server_block(self, service: GatewayService):
        return pretty_json(self._view(service)["server_block"]) if service.current_revision else "-"

    @admin.display(description="diff")
    def approval_diff(self, service: GatewayService):
        diffs = approval_diff(service)
        return pretty_json(diffs) if diffs else "nothing awaits approval"

    @admin.display(description="credentialName")
    def credential_name(self, service: GatewayService) -> str:
        return (self._view(service)["credential_name"] or "-") if service.current_revision else "-"

    @admin.display(description="expires")
    def certificate_expiry(self, service: GatewayService):
        certificate = service.current_revision.certificate if service.current_revision else None
        if not certificate:
            return "no certificate stored by the portal"
        return expiry_badge(certificate.get("not_after"), now=timezone.now())

    @admin.display(description="summary")
    def certificate_summary(self, service: GatewayService):
        certificate = service.current_revision.certificate if service.current_revision else None
        return pretty_json(certificate) if certificate else "-"

    # Decisions and reconciles: the bulk actions and the buttons on the detail page share these.

    @admin.action(description="Approve", permissions=["decide"])
    def approve(self, request, queryset: QuerySet[GatewayService]) -> None:
        self._decide(request, queryset, actions.revision_approve, "approved")

    @admin.action(description="Reject", permissions=["decide"])
    def reject(self, request, queryset: QuerySet[GatewayService]) -> None:
        self._decide(request, queryset, actions.revision_reject, "rejected")

    @admin.action(description="Reconcile now", permissions=["reconcile"])
    def reconcile(self, request, queryset: QuerySet[GatewayService]) -> None:
        by_traffic: dict[str, set[int]] = {}
        for service in queryset:
            by_traffic.setdefault(service.traffic_type, set()).update(s.cluster_id for s in service.statuses.all())
        requested = {traffic: ids for traffic, ids in by_traffic.items() if ids}
        if not requested:
            messages.warning(request, "None of the selected services is on any cluster yet; nothing to reconcile.")
            return
        with admin_actor(request.user):
            for traffic_type, cluster_ids in requested.items():
                request_reconcile(cluster_ids=cluster_ids, traffic_type=traffic_type)
        count = sum(len(ids) for ids in requested.values())
        messages.success(request, f"Reconcile requested for {count} gateway(s).")

    def _decide(
        self,
        request,
        queryset: QuerySet[GatewayService],
        decide: Callable[..., GatewayServiceRevision],
        verb: str,
    ) -> None:
        done = []
        for service in queryset:
            try:
                with admin_actor(request.user):
                    decide(revision=service.current_revision, comment=f"{verb.capitalize()} in the admin.")
            except DomainError as exc:
                messages.error(request, f"{service}: {'; '.join(m for _, m in error_items(exc.errors))}")
            else:
                done.append(str(service))
        if done:
            messages.success(request, f"{verb.capitalize()}: {', '.join(done)}.")

    def buttons_for(self, request, obj: GatewayService) -> list[str]:
        pending = obj.current_revision is not None and obj.current_revision.approval == Approval.PENDING
        return [name for name in self.object_buttons if pending or name not in ("approve", "reject")]


def expiry_badge(not_after: str | None, *, now: datetime):
    expires = parse_datetime(not_after) if not_after else None
    if expires is None:
        return "unknown"
    days = (expires - now).days
    if days < 0:
        return badge(f"expired {-days} days ago", STATE_COLORS[State.FAILED], not_after)
    color = STATE_COLORS[State.AWAITING_APPROVAL] if days < 30 else STATE_COLORS[State.APPLIED]
    return badge(f"{not_after} (in {days} days)", color, not_after)


@admin.register(GatewayServiceRevision)
class GatewayServiceRevisionAdmin(ReadOnlyAdmin):
    list_display = [
        "service",
        "number",
        "approval",
        "approval_reference",
        "author",
        "ticket",
        "decided_by",
        "created_at",
    ]
    list_filter = ["approval", "service__team"]
    search_fields = ["service__name", "service__namespace", "ticket", "approval_reference", "author"]
    list_select_related = ["service"]
    exclude = ["tls_material"]  # the private key is never shown, not even to platform engineers


@admin.register(GatewayServiceStatus)
class GatewayServiceStatusAdmin(ReadOnlyAdmin):
    list_display = ["service", "cluster", "traffic_type", "state", "revision", "message", "updated_at"]
    list_filter = ["state", "traffic_type", "cluster"]
    search_fields = ["service__name", "service__namespace", "message"]
    list_select_related = ["service", "cluster"]
