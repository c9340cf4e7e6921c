from django.db import models


class Source(models.TextChoices):
    """The door a change came through."""

    API = "api"
    ADMIN = "admin"
    WEBHOOK = "webhook"
    WORKER = "worker"
    SCHEDULER = "scheduler"
    CLI = "cli"
