"""Process and dependency probes: /healthz (liveness) and /readyz (readiness)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import path
from kombu import Connection

logger = logging.getLogger(__name__)

OK = "ok"
IN_PROCESS = "in-process"
BROKER_TIMEOUT_SECONDS = 2.0


def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers; deliberately checks nothing else, so a database outage never restarts pods."""
    return JsonResponse({"status": OK})


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        logger.warning("readyz: database unreachable", exc_info=True)
        return f"error: {exc.__class__.__name__}"
    return OK


def check_broker() -> str:
    # Read from settings on every probe: without a broker, tasks run in-process and none is needed.
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return IN_PROCESS
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_SECONDS) as broker:
            broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        # The exception text may contain the broker URL with its password: log the class only.
        logger.warning("readyz: broker unreachable (%s)", exc.__class__.__name__)
        return f"error: {exc.__class__.__name__}"
    return OK


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database(), "broker": check_broker()}
    ready = all(value in (OK, IN_PROCESS) for value in checks.values())
    return JsonResponse({"status": OK if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
