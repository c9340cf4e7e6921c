from __future__ import annotations

import uuid

from django.conf import settings
from django.db import connection, models

from gatewayportal.crypto import EncryptedJSONField
from services.choices import Approval, State, TrafficType
from services.listeners import normal_host
from services.references import approval_reference

# Quota defaults: one team may own a quarter of a Gateway, so no single team fills one (docs: Teams).
DEFAULT_MAX_SERVICES = 1000
DEFAULT_MAX_HOSTS_PER_GATEWAY = 2000
DEFAULT_GATEWAY_BUDGET_SHARE = 0.25


class Team(models.Model):
    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    namespaces = models.JSONField(default=list, help_text="Kubernetes namespaces the team owns.")
    allowed_domains = models.JSONField(default=list, help_text="DNS domains the team may expose.")
    allow_wildcards = models.BooleanField(default=False)
    # Where the team may land (both apply; null = no limit). Checked at each write: narrowing applies to later ones.
    allowed_clusters = models.JSONField(
        null=True, blank=True, default=None, help_text="Cluster names the team may target; null = every cluster."
    )
    allowed_cluster_selector = models.JSONField(
        null=True,
        blank=True,
        default=None,
        help_text="Labels a cluster must carry for the team to target it; null = no label required.",
    )
    # Quotas, checked when a request is made (services.quotas).
    max_services = models.PositiveIntegerField(
        default=DEFAULT_MAX_SERVICES, help_text="How many gateway services the team may own."
    )
    max_hosts_per_gateway = models.PositiveIntegerField(
        default=DEFAULT_MAX_HOSTS_PER_GATEWAY,
        help_text="How many hosts the team's services may list on one Gateway (one cluster, one traffic type).",
    )
    gateway_budget_share = models.FloatField(
        default=DEFAULT_GATEWAY_BUDGET_SHARE,
        help_text="The fraction (0-1) of a Gateway's byte budget the team's server blocks may take.",
    )
    granted_secrets = models.JSONField(
        default=list,
        blank=True,
        help_text="Secrets (names in the gateway's secret namespace) the team may name in tls_secret_ref.",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    idp_groups = models.JSONField(
        default=list, blank=True, help_text="Identity-provider groups whose members belong to the team."
    )
    trusted_identities = models.JSONField(
        default=list,
        blank=True,
        help_text="Workload identities (CI pipelines) that act as the team: {issuer, audience, claims: {claim: glob}}.",
    )
    # Timestamps, ordering and name as each named model declares them (clusters.Cluster, ticketing.TicketingSource):
    # Django declarations alike in shape, with no logic to share.
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


def indexed_hosts(hosts_index: str) -> set[str]:
    """The hosts of a service's `hosts_index` column (`|a|b|`) as the host index stores them (`normal_host`)."""
    return {normal_host(host) for host in hosts_index.strip("|").split("|") if host}


class GatewayService(models.Model):
    """One Istio server block, owned by a team. Its spec lives in immutable revisions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=63)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="services")
    namespace = models.CharField(max_length=63)
    traffic_type = models.CharField(max_length=7, choices=TrafficType.choices)
    # The newest revision (what ungated clusters run) and the newest approved one (gated clusters).
    current_revision = models.ForeignKey(
        "GatewayServiceRevision", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    approved_revision = models.ForeignKey(
        "GatewayServiceRevision", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Copied from the current revision so lists can be filtered without reading JSON.
    port = models.PositiveIntegerField(null=True, db_index=True)
    protocol = models.CharField(max_length=10, blank=True, db_index=True)
    mode = models.CharField(max_length=12, blank=True)
    hosts_index = models.TextField(blank=True, help_text="'|host|host|', lower case, for host filters.")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleting_at = models.DateTimeField(null=True, blank=True, help_text="Set while removal is in progress.")
    apply_set = models.CharField(
        max_length=63,
        blank=True,
        db_index=True,
        help_text="The apply set that last applied this service (declarative apply prunes only inside it).",
    )
    # Computed by the database: the approved revision is another than the current one (a revision awaits a
    # decision, or the newest was refused). A column of its own, so the conflict check finds these few services
    # by index, with statistics the planner can count on (the comparison of two columns it cannot estimate).
    awaiting_decision = models.GeneratedField(
        expression=models.Case(
            models.When(
                models.Q(approved_revision__isnull=False) & ~models.Q(approved_revision=models.F("current_revision")),
                then=models.Value(True),
            ),
            default=models.Value(False),
        ),
        output_field=models.BooleanField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["team__slug", "namespace", "name"]
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name"], name="gateway_service_unique_name_per_namespace"),
        ]
        indexes = [
            # The conflict check's look-ups (services.actions.conflict_candidates): TLS or plain-text servers on a
            # port, other protocols on a port, and services whose approved revision is not their current one.
            models.Index(fields=["port", "mode"], name="service_port_mode"),
            models.Index(fields=["port", "protocol"], name="service_port_protocol"),
            models.Index(fields=["awaiting_decision"], name="service_awaiting_decision"),
            # A team's live services, counted against its quota.
            models.Index(fields=["team"], condition=models.Q(deleting_at__isnull=True), name="service_live_per_team"),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def save(self, *args, **kwargs):
        # The host index rows this instance has written (`_save_host_keys`, maybe ahead of the row itself); a new
        # row has none otherwise, and a loaded one is not known.
        known = getattr(self, "_host_keys", set() if self._state.adding else None)
        super().save(*args, **kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "hosts_index" in update_fields:
            self._save_host_keys(known=known)

    def host_keys(self) -> set[str]:
        """The hosts of `hosts_index` as the conflict check compares them."""
        return indexed_hosts(self.hosts_index)

    def _save_host_keys(self, *, known: set[str] | None) -> None:
        """Make the service's `GatewayServiceHost` rows its `host_keys()`; `known`: the rows it has (None: unknown)."""
        wanted = self.host_keys()
        if known is None:
            self.indexed_hosts.exclude(host__in=wanted).delete()
        elif known - wanted:
            self.indexed_hosts.filter(host__in=known - wanted).delete()
        added = wanted if known is None else wanted - known
        if added:
            GatewayServiceHost.objects.bulk_create(
                [GatewayServiceHost.of(self, host) for host in sorted(added)], ignore_conflicts=known is None
            )
        self._host_keys = wanted


def triggers_kept() -> bool:
    """Whether the database runs the triggers some tables are kept by (migrations 0008 and 0009): Postgres only;
    the SQLite demo has none, and the readers of those tables fall back to counting or to no cache."""
    return connection.vendor == "postgresql"


class TeamServiceCount(models.Model):
    """How many gateway services a team owns (`services`), and how many of them are not being deleted (`live`).

    Kept by Postgres triggers on the services table (migration 0008), whatever writes it: the actions, a bulk load,
    a cascade. A list's count and the service quota read one row per team instead of counting the team's services.
    Without Postgres (the SQLite demo) there are no triggers and no rows: those reads count the services.
    """

    team = models.OneToOneField(Team, primary_key=True, on_delete=models.CASCADE, related_name="service_count")
    services = models.PositiveIntegerField(default=0)
    live = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.team_id}: {self.services} ({self.live} live)"

    @staticmethod
    def kept() -> bool:
        """Whether the database keeps the counts (the triggers are Postgres only)."""
        return triggers_kept()


class ListVersion(models.Model):
    """How often what the service list shows has changed, per team (`scope` is its id) and for the clusters
    (`scope` 0): the list's response cache keys on these (`services.listcache`).

    Kept by Postgres triggers (migration 0009), whatever writes: a team's services, their revisions and status
    rows, its slug; a cluster's name, labels, `enabled`, `requires_approval`, `namespace_scoped_hosts`. A
    transaction's changes are collected as it goes and counted once, at its commit, in scope order. A row's
    version only grows and rows are never deleted, so the sum over the table changes at every counted commit.
    Without Postgres (the SQLite demo) there are no triggers and no rows: lists are not cached there.
    """

    CLUSTERS = 0  # the scope of the clusters' row; team ids start at 1

    scope = models.BigIntegerField(primary_key=True)
    version = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.scope}: {self.version}"

    @staticmethod
    def kept() -> bool:
        """Whether the database keeps the versions (the triggers are Postgres only)."""
        return triggers_kept()


class GatewayServiceHost(models.Model):
    """One host of a service's current revision as the conflict check compares it (`services.listeners.normal_host`),
    indexed, so that the services a new host may clash with are looked up instead of read one by one.

    Always the hosts of `GatewayService.hosts_index`: `GatewayService.save` keeps them equal, in the same
    transaction (bulk writes, which skip `save`, call `GatewayServiceHost.rebuild`).
    """

    service = models.ForeignKey(GatewayService, on_delete=models.CASCADE, related_name="indexed_hosts")
    host = models.CharField(max_length=255, db_index=True)
    # The host spelled backwards: the hosts under a wildcard `*.example.com` are the prefix `moc.elpmaxe.`.
    reversed_host = models.CharField(max_length=255, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "host"], name="service_host_unique"),
        ]

    def __str__(self) -> str:
        return self.host

    @classmethod
    def of(cls, service: GatewayService, host: str) -> GatewayServiceHost:
        return cls(service=service, host=host, reversed_host=host[::-1])

    @classmethod
    def rebuild(cls, services: models.QuerySet[GatewayService]) -> None:
        """Index these services' hosts afresh (after writes that bypassed `GatewayService.save`)."""
        cls.objects.filter(service__in=services).delete()
        rows = services.values_list("pk", "hosts_index").iterator()
        cls.objects.bulk_create(
            (
                cls(service_id=pk, host=host, reversed_host=host[::-1])
                for pk, index in rows
                for host in sorted(indexed_hosts(index))
            ),
            batch_size=2000,
        )


class GatewayTally(models.Model):
    """What the live services stand for on one Gateway (one cluster and traffic type): each team's hosts and block
    bytes there and the Gateway's total, for the quotas and the byte budget a request is checked against.

    Kept by every write in its own transaction, under this row's lock (`services.tallies`), so that a request reads
    one row instead of every service on the Gateway. Recomputed from the services when missing, or when the
    cluster's facts it was counted on (labels, enabled, requires_approval) have changed since.
    """

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="+")
    traffic_type = models.CharField(max_length=7, choices=TrafficType.choices)
    basis = models.CharField(max_length=64, help_text="Digest of the cluster facts the tally was counted on.")
    teams = models.JSONField(default=dict, help_text="team id -> [hosts, block bytes] of its services here")
    total_bytes = models.PositiveBigIntegerField(default=0, help_text="bytes of every block that runs here")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "traffic_type"], name="gateway_tally_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster_id}/{self.traffic_type}"


class GatewayServiceRevision(models.Model):
    """An immutable version of a service's spec. Only its approval decision is ever recorded later."""

    service = models.ForeignKey(GatewayService, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    spec = models.JSONField(help_text="The full spec without private key material.")
    # Certificate, key and CA, encrypted at rest. Never returned by the API.
    tls_material = EncryptedJSONField(null=True, blank=True)
    certificate = models.JSONField(null=True, blank=True, help_text="Public summary of the leaf certificate.")
    approval = models.CharField(max_length=12, choices=Approval.choices, default=Approval.NOT_REQUIRED)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    author = models.CharField(max_length=150, blank=True)
    ticket = models.CharField(max_length=100, blank=True)
    approval_reference = models.CharField(
        max_length=32,
        blank=True,
        editable=False,
        db_index=True,
        help_text="What a ticket quotes to approve exactly this revision (derived from service, number and spec).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Rendered once when written (`services.rendering.render_revision`), derived from spec and material: the
    # server block with plain hosts, its digest, and the digest of its TLS Secret ('' when it has none).
    rendered_block = models.JSONField(null=True, blank=True, editable=False)
    block_digest = models.CharField(max_length=64, blank=True, editable=False)
    secret_digest = models.CharField(max_length=64, blank=True, editable=False)

    IMMUTABLE_FIELDS = (
        "service_id",
        "number",
        "spec",
        "tls_material",
        "certificate",
        "author",
        "ticket",
        "approval_reference",
    )

    class Meta:
        ordering = ["service", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["service", "number"], name="revision_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.service} r{self.number}"

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if self.pk and (update_fields is None or set(update_fields) & set(self.IMMUTABLE_FIELDS)):
            raise ValueError("Revisions are immutable; only the approval decision may be recorded.")
        if not self.pk and not self.approval_reference:
            self.approval_reference = approval_reference(service_id=self.service_id, number=self.number, spec=self.spec)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Revisions are immutable and are removed only with their service.")


class GatewayServiceStatus(models.Model):
    """Where a service stands on one cluster's gateway."""

    # No index of its own: the unique constraint's index (service, cluster) serves look-ups by service, and a
    # reconcile writing thousands of statuses maintains one index fewer.
    service = models.ForeignKey(GatewayService, on_delete=models.CASCADE, related_name="statuses", db_index=False)
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="service_statuses")
    traffic_type = models.CharField(max_length=7, choices=TrafficType.choices)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    revision = models.PositiveIntegerField(null=True, blank=True)
    message = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["cluster__name"]
        constraints = [
            models.UniqueConstraint(fields=["service", "cluster"], name="status_unique_service_cluster"),
        ]

    def __str__(self) -> str:
        return f"{self.service} on {self.cluster}: {self.state}"


# Which identity-provider subject a local user stands for (services/identity/ signs them in).
class ExternalIdentity(models.Model):
    class Kind(models.TextChoices):
        PERSON = "person"
        WORKLOAD = "workload"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identity")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=500)
    email = models.CharField(max_length=254, blank=True)
    last_seen = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "issuer", "subject"], name="external_identity_unique_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.issuer} {self.subject}"

    def as_audit(self) -> dict[str, str]:
        """The identity as audit events carry it (in their `data`)."""
        out = {"issuer": self.issuer, "subject": self.subject}
        if self.email:
            out["email"] = self.email
        return out
