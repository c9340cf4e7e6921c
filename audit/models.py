from django.db import models
from django.utils import timezone

from audit.choices import Source


class AppendOnlyError(Exception):
    """An attempt to change or remove an audit record through the ORM."""


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk update and delete are refused; retention goes through `audit.retention` only."""

    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only; update() is refused.")

    def delete(self):
        raise AppendOnlyError(
            f"{self.model.__name__} rows are append-only; delete() is refused (retention: manage.py audit_purge)."
        )


class AppendOnlyModel(models.Model):
    """Rows written once: the ORM refuses to save an existing row again or to delete one, alone or in bulk."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only; an existing one cannot be saved again.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(
            f"{type(self).__name__} rows are append-only; delete() is refused (retention: manage.py audit_purge)."
        )


# The public shape of an event (API, CSV export), in the order of API.md.
EVENT_FIELDS = (
    "id",
    "at",
    "actor",
    "source",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "team",
    "cluster",
    "ticket",
    "request_id",
    "changes",
    "data",
    "hash",
    "prev_hash",
)


class AuditEvent(AppendOnlyModel):
    """One recorded change. Append-only: written in the transaction of the change it records.

    A request inserts the event unsealed (`seq`, `hash` and `prev_hash` null). The sequencer
    (`audit.chain.seal`) later gives it its place `seq` in the chain, the hash of the event
    sealed before it (`prev_hash`) and its own `hash`, SHA-256 over the canonical form of its
    content and `prev_hash`. On Postgres a trigger rejects every UPDATE but that one sealing,
    and every DELETE but retention's (migrations 0003 and 0004).
    """

    # Set by `audit_record` before hashing (not auto_now_add, which would overwrite the hashed value).
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=20, choices=Source.choices, db_index=True)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=50)
    object_id = models.CharField(max_length=100, blank=True, db_index=True)
    object_repr = models.CharField(max_length=300, blank=True)
    team = models.CharField(max_length=63, blank=True, null=True, db_index=True)
    cluster = models.CharField(max_length=63, blank=True, null=True, db_index=True)
    ticket = models.CharField(max_length=100, blank=True, null=True, db_index=True)
    request_id = models.CharField(max_length=128, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    data = models.JSONField(default=dict, blank=True)
    # Null until sealed; "" is the genesis event's prev_hash.
    prev_hash = models.CharField(
        max_length=64, blank=True, null=True, help_text="Hash of the event before it in the chain; null until sealed."
    )
    hash = models.CharField(
        max_length=64, blank=True, null=True, help_text="Null until the event is sealed into the hash chain."
    )
    # The event's place in the chain, given by the sequencer (null until sealed). Not part of the API.
    seq = models.BigIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="audit_event_unsealed")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_repr}"


class AuditAnchor(AppendOnlyModel):
    """Vouches for one gap left in the hash chain by a retention purge.

    The kept event `event_id` follows purged events: its `prev_hash` (== `purged_hash`) names the
    last purged event, and `prev_hash` here is the hash of the kept event before the gap ("" when
    none). `audit.chain.verify` accepts exactly that link, nothing else.
    """

    created_at = models.DateTimeField(default=timezone.now)
    event_id = models.BigIntegerField(db_index=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    purged_hash = models.CharField(max_length=64)
    first_purged_id = models.BigIntegerField()
    last_purged_id = models.BigIntegerField()
    purged_count = models.PositiveIntegerField()
    archive = models.CharField(max_length=300, help_text="File name of the JSON-lines archive of the purged events.")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"gap of {self.purged_count} before event {self.event_id}"
