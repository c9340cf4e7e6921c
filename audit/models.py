from django.db import models


class AuditEvent(models.Model):
    """One recorded change. Append-only: written in the transaction of the change it records."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=20, db_index=True)  # api admin webhook worker scheduler cli
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
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_repr}"
