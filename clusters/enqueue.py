"""Reconcile requests: every gateway-affecting write asks for a run of the gateways it touches, coalesced.

Requests are sent once the writing transaction commits. A Redis marker per gateway ("a run is queued and has
not started") turns a burst of writes into one run; the task clears it as it starts (`clusters.tasks`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

import kombu.exceptions
import redis
from django.conf import settings
from django.db import transaction

from clusters.tasks import clear_pending, pending_key, reconcile_gateway
from gatewayportal.redis import key_prefix, redis_client

__all__ = ["clear_pending", "pending_key", "request_reconcile"]

# Writes to one gateway within this window produce one reconcile.
COALESCE_SECONDS = 0.1
PENDING_TTL_SECONDS = 60
# More than BURST_REQUESTS requests for one gateway within BURST_WINDOW_SECONDS (faster than a person or a
# pipeline applying changes one by one, about 5 a second) switch it to burst mode for
# BURST_HOLD_SECONDS: reconciles then wait BURST_COALESCE_SECONDS, so an import of hundreds of services
# becomes a handful of Gateway writes while a single change still lands within a fraction of a second.
BURST_REQUESTS = 10
BURST_WINDOW_SECONDS = 2
BURST_HOLD_SECONDS = 10
BURST_COALESCE_SECONDS = 8.0
logger = logging.getLogger(__name__)


def request_reconcile(*, cluster_ids: Iterable[int], traffic_type: str) -> None:
    """Enqueue a reconcile of each cluster's gateway once the current transaction commits (coalesced)."""
    ids = sorted(set(cluster_ids))
    if ids:
        transaction.on_commit(lambda: _enqueue(ids, traffic_type))


def _enqueue(cluster_ids: list[int], traffic_type: str) -> None:
    for cluster_id in cluster_ids:
        try:
            _enqueue_one(cluster_id, traffic_type)
        except (redis.exceptions.RedisError, kombu.exceptions.OperationalError) as exc:
            # The write has committed and must not fail now; the periodic sweep reconciles every gateway.
            logger.warning(
                "could not enqueue a reconcile of cluster %s/%s; the sweep will pick it up: %s",
                cluster_id,
                traffic_type,
                exc,
            )


def _enqueue_one(cluster_id: int, traffic_type: str) -> None:
    countdown = COALESCE_SECONDS
    marked = False
    if settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        countdown = _countdown(cluster_id, traffic_type)
        # Already queued and not started yet: that run will read this change too.
        marked = bool(redis_client().set(pending_key(cluster_id, traffic_type), "1", nx=True, ex=PENDING_TTL_SECONDS))
        if not marked:
            return
    try:
        reconcile_gateway.apply_async((cluster_id, traffic_type), countdown=countdown)
    except kombu.exceptions.OperationalError:
        if marked:
            # Nothing is queued after all: the marker must not hold back the next request's enqueue.
            with contextlib.suppress(redis.exceptions.RedisError):
                clear_pending(cluster_id, traffic_type)
        raise


def _countdown(cluster_id: int, traffic_type: str) -> float:
    """Short normally; long while the gateway receives a burst of changes (see BURST_*)."""
    client = redis_client()
    key = f"{key_prefix()}:rate:{cluster_id}:{traffic_type}"
    burst_key = f"{key_prefix()}:burst:{cluster_id}:{traffic_type}"
    count, bursting = client.pipeline().incr(key).exists(burst_key).execute()
    if count == 1:
        client.expire(key, BURST_WINDOW_SECONDS)
    if count > BURST_REQUESTS:
        client.set(burst_key, "1", ex=BURST_HOLD_SECONDS)
        bursting = True
    return BURST_COALESCE_SECONDS if bursting else COALESCE_SECONDS
