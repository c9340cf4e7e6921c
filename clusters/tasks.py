"""Thin Celery entry points: ids in, call the converge/check actions, retry only transient errors."""

from __future__ import annotations

import logging
import random
import uuid

import kombu.exceptions
import redis
from celery import shared_task

from clusters import coalescer, converge, health, kube
from clusters.enqueue import RECONCILE_GATEWAY
from clusters.models import Cluster
from gatewayportal.context import acting_as
from services.choices import TRAFFIC_TYPES

logger = logging.getLogger(__name__)

MAX_RETRIES = 5
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
BUSY_RETRY_SECONDS = 1.0


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, so many gateways failing together do not retry in step."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)) + 0.1


@shared_task(name=RECONCILE_GATEWAY, bind=True, acks_late=True, max_retries=MAX_RETRIES, ignore_result=True)
def reconcile_gateway(self, cluster_id: int, traffic_type: str, verify_all: bool = False, queued: bool = True) -> None:
    """Converge one gateway. `queued` runs were requested by changes and are coalesced (clusters.coalescer);
    others (the sweep) start at once unless a run is in progress, which then runs once more for them."""
    token = self.request.id or uuid.uuid4().hex
    coalesced = coalescer.enabled()
    if coalesced:
        try:
            verdict, wait = coalescer.begin(
                cluster_id, traffic_type, token=token, force=not queued or bool(self.request.retries), verify=verify_all
            )
        except redis.exceptions.RedisError as exc:
            # Without the coalescer's state the gateway lock still keeps runs apart: run now.
            logger.warning("coalescer unavailable for %s/%s, running anyway: %s", cluster_id, traffic_type, exc)
            verdict, wait, coalesced = coalescer.RUN, 0.0, False
        if verdict == coalescer.WAIT:
            reconcile_gateway.apply_async((cluster_id, traffic_type, verify_all, queued), countdown=wait)
            return
        if verdict == coalescer.DEFER:
            return  # the run in progress runs once more for us
    try:
        _converge(self, cluster_id, traffic_type, verify_all)
    finally:
        if coalesced:
            _finish(cluster_id, traffic_type, token, verify_all)


def _finish(cluster_id: int, traffic_type: str, token: str, verify_all: bool) -> None:
    """Release the run; queue the one follow-up if changes arrived meanwhile."""
    try:
        follow_up = coalescer.finish(cluster_id, traffic_type, token=token)
        if follow_up is not None:
            countdown, verify = follow_up
            reconcile_gateway.apply_async((cluster_id, traffic_type, verify_all or verify), countdown=countdown)
    except (redis.exceptions.RedisError, kombu.exceptions.OperationalError) as exc:
        logger.warning("could not queue the follow-up run of %s/%s; the sweep will: %s", cluster_id, traffic_type, exc)


def _converge(task, cluster_id: int, traffic_type: str, verify_all: bool) -> None:
    with acting_as(name="worker", source="worker"):
        try:
            converge.gateway_converge(
                cluster_id=cluster_id,
                traffic_type=traffic_type,
                verify_all=verify_all,
                # Conflicts with other writers are retried quietly; only the last attempt records them.
                record_conflicts=task.request.retries >= task.max_retries,
            )
        except converge.GatewayBusy:
            # A writer outside the coalescer holds this gateway and may have read the database before our
            # change: run after it.
            reconcile_gateway.apply_async((cluster_id, traffic_type, verify_all, False), countdown=BUSY_RETRY_SECONDS)
        except kube.TransientError as exc:
            if task.request.retries >= task.max_retries:
                # Already recorded as failed; the periodic sweep tries again.
                logger.warning("giving up on %s/%s until the next sweep: %s", cluster_id, traffic_type, exc.message)
                return
            raise task.retry(countdown=backoff(task.request.retries), exc=exc)


@shared_task(acks_late=True, ignore_result=True)
def sweep_gateways() -> None:
    """Beat: reconcile every gateway of every enabled cluster, verifying secrets too (drift detection)."""
    for cluster_id in Cluster.objects.filter(enabled=True).values_list("id", flat=True):
        for traffic_type in TRAFFIC_TYPES:
            reconcile_gateway.delay(cluster_id, traffic_type, True, False)


@shared_task(acks_late=True, ignore_result=True)
def check_cluster_health() -> None:
    """Beat: refresh every enabled cluster's health fields."""
    for cluster in Cluster.objects.filter(enabled=True):
        with acting_as(name="scheduler", source="scheduler"):
            health.cluster_check(cluster=cluster, permissions=False)
