"""The Celery application. Without a broker, tasks run in-process (eager)."""

import os
import time
from datetime import datetime

from celery import Celery, signals

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
        # Safety net of the on-commit seal: bounds how long an audit event stays unsealed.
        "seal-audit-events": {"task": "audit.seal_audit_events", "schedule": settings.AUDIT_SEAL_INTERVAL_SECONDS},
        # A no-op unless AUDIT_RETENTION_DAYS is set.
        "purge-expired-audit-events": {"task": "audit.purge_expired", "schedule": 24 * 60 * 60},
    }


@signals.before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **kwargs) -> None:
    """Tasks enqueued by a request carry its id, so the worker's log lines and audit events name it."""
    from gatewayportal.context import current_actor

    if headers is not None and "request_id" not in headers:
        headers["request_id"] = current_actor().request_id
    if headers is not None:
        headers.setdefault("published_at", time.time())


_task_context: dict[str, object] = {}


@signals.task_prerun.connect
def _enter_task_context(task_id: str | None = None, task=None, **kwargs) -> None:
    from gatewayportal.context import _current, current_actor

    headers = getattr(task.request, "headers", None) or {}
    _observe_queue_lag(task.request, headers)
    request_id = getattr(task.request, "request_id", None) or headers.get("request_id") or current_actor().request_id
    _task_context[task_id] = _current.set(
        type(current_actor())(name="system", source="worker", request_id=request_id or "")
    )


def _observe_queue_lag(request, headers: dict) -> None:
    """Seconds a task waited in the queue beyond its countdown (a sign that more workers are needed)."""
    from gatewayportal.metrics import set_queue_lag

    published = getattr(request, "published_at", None) or headers.get("published_at")
    if request.is_eager or not published:
        return
    ready = float(published)
    if request.eta:
        ready = max(ready, datetime.fromisoformat(str(request.eta)).timestamp())
    set_queue_lag(max(0.0, time.time() - ready))


@signals.task_postrun.connect
def _leave_task_context(task_id: str | None = None, **kwargs) -> None:
    from gatewayportal.context import _current

    token = _task_context.pop(task_id, None)
    if token is not None:
        _current.reset(token)
