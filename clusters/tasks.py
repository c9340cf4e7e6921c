"""Thin Celery entry points: ids in, call the converge/check actions, retry only transient errors."""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings

from clusters import converge, health, kube
from clusters.models import Cluster
from gatewayportal.context import acting_as
from gatewayportal.redis import key_prefix, redis_client
from services.choices import TRAFFIC_TYPES

logger = logging.getLogger(__name__)

MAX_RETRIES = 5
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
BUSY_RETRY_SECONDS = 1.0


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, so many gateways failing together do not retry in step."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)) + 0.1


@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def reconcile_gateway(self, cluster_id: int, traffic_type: str, verify_all: bool = False) -> None:
    # Cleared before reading the database: a change committed from now on enqueues another run.
    clear_pending(cluster_id, traffic_type)
    with acting_as(name="worker", source="worker"):
        try:
            converge.gateway_converge(
                cluster_id=cluster_id,
                traffic_type=traffic_type,
                verify_all=verify_all,
                # Conflicts with other writers are retried quietly; only the last attempt records them.
                record_conflicts=self.request.retries >= self.max_retries,
            )
        except converge.GatewayBusy:
            # Another worker is on this gateway and may have read the database before our change: run after it.
            reconcile_gateway.apply_async((cluster_id, traffic_type, verify_all), countdown=BUSY_RETRY_SECONDS)
        except kube.TransientError as exc:
            if self.request.retries >= self.max_retries:
                # Already recorded as failed; the periodic sweep tries again.
                logger.warning("giving up on %s/%s until the next sweep: %s", cluster_id, traffic_type, exc.message)
                return
            raise self.retry(countdown=backoff(self.request.retries), exc=exc)


@shared_task(acks_late=True, ignore_result=True)
def sweep_gateways() -> None:
    """Beat: reconcile every gateway of every enabled cluster, verifying secrets too (drift detection)."""
    for cluster_id in Cluster.objects.filter(enabled=True).values_list("id", flat=True):
        for traffic_type in TRAFFIC_TYPES:
            reconcile_gateway.delay(cluster_id, traffic_type, True)


@shared_task(acks_late=True, ignore_result=True)
def check_cluster_health() -> None:
    """Beat: refresh every enabled cluster's health fields."""
    for cluster in Cluster.objects.filter(enabled=True):
        with acting_as(name="scheduler", source="scheduler"):
            health.cluster_check(cluster=cluster, permissions=False)


# --- The queued-run marker (set by clusters.enqueue) ---------------------------------------------------------------


def clear_pending(cluster_id: int, traffic_type: str) -> None:
    if settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        redis_client().delete(pending_key(cluster_id, traffic_type))


def pending_key(cluster_id: int, traffic_type: str) -> str:
    return f"{key_prefix()}:pending:{cluster_id}:{traffic_type}"
