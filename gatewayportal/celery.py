"""The Celery application. Without a broker, tasks run in-process (eager)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gatewayportal.settings")

app = Celery("gatewayportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _beat_schedule(sender: Celery, **kwargs) -> None:
    """Periodic work, with intervals from Django settings (read once Django is configured)."""
    from django.conf import settings

    sender.conf.beat_schedule = {
        "sweep-gateways": {"task": "clusters.tasks.sweep_gateways", "schedule": settings.SWEEP_INTERVAL_SECONDS},
        "check-cluster-health": {
            "task": "clusters.tasks.check_cluster_health",
            "schedule": settings.HEALTH_CHECK_INTERVAL_SECONDS,
        },
        # A no-op unless AUDIT_RETENTION_DAYS is set.
        "purge-expired-audit-events": {"task": "audit.purge_expired", "schedule": 24 * 60 * 60},
    }
