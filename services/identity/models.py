"""Which identity-provider subject a local user stands for."""

from django.conf import settings
from django.db import models


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
        app_label = "services"
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
