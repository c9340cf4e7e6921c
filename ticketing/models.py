from __future__ import annotations

from datetime import datetime

from django.core.validators import RegexValidator
from django.db import models

from gatewayportal.crypto import EncryptedTextField


# Django choices, declared like those of services.choices (the portal's vocabulary) but of this app's own words:
# alike in shape only.
class SourceKind(models.TextChoices):
    GENERIC = "generic"
    JIRA = "jira"
    SERVICENOW = "servicenow"


class Outcome(models.TextChoices):
    APPROVED = "approved"
    REJECTED = "rejected"
    CREATED = "created"
    IGNORED = "ignored"


class TicketingSource(models.Model):
    """A ticketing system allowed to decide (and file) the requests of one team through the webhook."""

    name = models.SlugField(max_length=63, unique=True, help_text="The `{source}` in the webhook URL.")
    kind = models.CharField(max_length=10, choices=SourceKind.choices)
    team = models.ForeignKey("services.Team", on_delete=models.PROTECT, related_name="ticketing_sources")
    secret = EncryptedTextField(help_text="Signing secret (generic, jira) or bearer token (servicenow).")
    # Still accepted until `previous_secret_expires_at`, so senders can switch over without lost deliveries.
    previous_secret = EncryptedTextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    approved_statuses = models.JSONField(default=list, blank=True, help_text="Jira statuses / ServiceNow values.")
    rejected_statuses = models.JSONField(default=list, blank=True, help_text="Jira statuses / ServiceNow values.")
    enabled = models.BooleanField(default=True)
    require_references = models.BooleanField(
        default=False,
        help_text="Approve only the revisions whose approval reference the delivery carries (recommended for "
        "production).",
    )
    reference_field = models.CharField(
        max_length=100,
        blank=True,
        default="",
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9_]+\Z",
                "A field name: letters, digits and '_' (e.g. customfield_10042 or u_approval_references).",
            )
        ],
        help_text="Jira issue field or ServiceNow record field whose text carries the approval references "
        "(blank: the description; not used by generic sources, which list them in `revisions`).",
    )
    # Timestamps, ordering and name as each named model declares them (clusters.Cluster, services.Team): Django
    # declarations alike in shape, with no logic to share.
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def valid_secrets(self, *, now: datetime) -> list[str]:
        """The current secret, plus the previous one while its overlap window lasts."""
        still_valid = self.previous_secret and self.previous_secret_expires_at and now < self.previous_secret_expires_at
        return [self.secret, self.previous_secret] if still_valid else [self.secret]


class WebhookDelivery(models.Model):
    """An accepted delivery, kept so that a repeat of it changes nothing."""

    source = models.ForeignKey(TicketingSource, on_delete=models.CASCADE, related_name="deliveries")
    # `webhook-id` for generic; the SHA-256 of the body for kinds whose deliveries carry no signed id.
    delivery_id = models.CharField(max_length=200)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    ticket = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["source", "delivery_id"], name="webhook_delivery_unique_per_source"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.delivery_id}: {self.outcome}"
